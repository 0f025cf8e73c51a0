/* libmetricdepth_video: video in and out through FFmpeg's libraries (libavformat, libavcodec,
 * libswscale): frames decoded to 8-bit RGB, and RGB frames encoded to a
 * file (H.264 when the build has an encoder for it, else MPEG-4 part 2).
 * Nothing here touches FFmpeg's process-wide settings (its log level is the
 * application's to choose). */
#include "base/base.h"
#include "metricdepth_video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include <stdlib.h>
#include <string.h>

static const char *av_msg(int code, char *buf, size_t n)
{
    av_strerror(code, buf, n);
    return buf;
}

static char *copy_path(const char *path, md_error *err)
{
    return md_strdup(path, "path", err);
}

/* ------------------------------------------------------------- reading */

struct md_video_reader {
    char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    int stream;
    int eof_sent;
    int pending; /* pkt holds a packet the decoder has not taken yet */
    int sws_w, sws_h, sws_fmt;
};

void md_video_close(md_video_reader *r)
{
    if (!r)
        return;
    sws_freeContext(r->sws);
    av_packet_free(&r->pkt);
    av_frame_free(&r->frame);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    free(r->path);
    free(r);
}

md_status md_video_open(const char *path, md_video_reader **out, md_video_info *info,
                        md_error *err)
{
    if (out)
        *out = NULL;
    if (info)
        memset(info, 0, sizeof *info);
    if (!path || !out)
        return md_fail(err, MD_ERR_ARG, "md_video_open: NULL argument");
    md_video_reader *r = md_calloc(1, sizeof *r, "video reader", err);
    if (!r)
        return MD_ERR_NOMEM;
    if (!(r->path = copy_path(path, err))) {
        free(r);
        return MD_ERR_NOMEM;
    }
    char msg[128];
    int rc = avformat_open_input(&r->fmt, path, NULL, NULL);
    md_status st = MD_OK;
    if (rc < 0) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: cannot open as a video: %s", path,
                     av_msg(rc, msg, sizeof msg));
        goto fail;
    }
    if ((rc = avformat_find_stream_info(r->fmt, NULL)) < 0) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: unreadable video: %s", path,
                     av_msg(rc, msg, sizeof msg));
        goto fail;
    }
    const AVCodec *codec = NULL;
    r->stream = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r->stream < 0 || !codec) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: no video stream that this FFmpeg can decode", path);
        goto fail;
    }
    AVStream *vs = r->fmt->streams[r->stream];
    r->dec = avcodec_alloc_context3(codec);
    r->frame = av_frame_alloc();
    r->pkt = av_packet_alloc();
    if (!r->dec || !r->frame || !r->pkt) {
        st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the video decoder", path);
        goto fail;
    }
    avcodec_parameters_to_context(r->dec, vs->codecpar);
    r->dec->thread_count = 1; /* the cores belong to the network */
    if ((rc = avcodec_open2(r->dec, codec, NULL)) < 0) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: cannot open the %s decoder: %s", path, codec->name,
                     av_msg(rc, msg, sizeof msg));
        goto fail;
    }
    if (r->dec->width <= 0 || r->dec->height <= 0 || r->dec->width > MD_MAX_DIM ||
        r->dec->height > MD_MAX_DIM) {
        st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: video size %dx%d outside 1..%d", path,
                     r->dec->width, r->dec->height, MD_MAX_DIM);
        goto fail;
    }
    if (info) {
        info->width = r->dec->width;
        info->height = r->dec->height;
        AVRational fr = av_guess_frame_rate(r->fmt, vs, NULL);
        info->fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
        info->frames = vs->nb_frames > 0 ? vs->nb_frames : 0;
        snprintf(info->codec, sizeof info->codec, "%s", codec->name);
    }
    *out = r;
    return MD_OK;
fail:
    md_video_close(r);
    return st;
}

static md_status frame_to_rgb(md_video_reader *r, md_image *img, md_error *err)
{
    AVFrame *f = r->frame;
    if (f->width <= 0 || f->height <= 0 || f->width > MD_MAX_DIM || f->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_FORMAT, "%s: frame of size %dx%d", r->path, f->width,
                       f->height);
    if (!r->sws || r->sws_w != f->width || r->sws_h != f->height || r->sws_fmt != f->format) {
        sws_freeContext(r->sws);
        r->sws = sws_getContext(f->width, f->height, (enum AVPixelFormat)f->format, f->width,
                                f->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL, NULL);
        if (!r->sws)
            return md_fail(err, MD_ERR_UNSUPPORTED, "%s: cannot convert pixel format %s to RGB",
                           r->path, av_get_pix_fmt_name((enum AVPixelFormat)f->format));
        r->sws_w = f->width;
        r->sws_h = f->height;
        r->sws_fmt = f->format;
    }
    size_t bytes = (size_t)f->width * (size_t)f->height * 3;
    img->pixels = md_malloc(bytes, r->path, err);
    if (!img->pixels)
        return MD_ERR_NOMEM;
    uint8_t *dst[4] = {img->pixels, NULL, NULL, NULL};
    int stride[4] = {f->width * 3, 0, 0, 0};
    sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, stride);
    img->width = f->width;
    img->height = f->height;
    return MD_OK;
}

md_status md_video_read(md_video_reader *r, md_image *frame, int *got, md_error *err)
{
    if (frame)
        memset(frame, 0, sizeof *frame);
    if (got)
        *got = 0;
    if (!r || !frame || !got)
        return md_fail(err, MD_ERR_ARG, "md_video_read: NULL argument");
    char msg[128];
    for (;;) {
        int rc = avcodec_receive_frame(r->dec, r->frame);
        if (rc == 0) {
            md_status st = frame_to_rgb(r, frame, err);
            av_frame_unref(r->frame);
            if (st == MD_OK)
                *got = 1;
            return st;
        }
        if (rc == AVERROR_EOF)
            return MD_OK;
        if (rc != AVERROR(EAGAIN))
            return md_fail(err, MD_ERR_FORMAT, "%s: corrupt video frame: %s", r->path,
                           av_msg(rc, msg, sizeof msg));
        if (r->eof_sent)
            return MD_OK;
        if (!r->pending) {
            rc = av_read_frame(r->fmt, r->pkt);
            if (rc == AVERROR_EOF) {
                avcodec_send_packet(r->dec, NULL); /* flush the decoder's delayed frames */
                r->eof_sent = 1;
                continue;
            }
            if (rc < 0)
                return md_fail(err, MD_ERR_IO, "%s: read error: %s", r->path,
                               av_msg(rc, msg, sizeof msg));
            if (r->pkt->stream_index != r->stream) {
                av_packet_unref(r->pkt);
                continue;
            }
            r->pending = 1;
        }
        rc = avcodec_send_packet(r->dec, r->pkt);
        if (rc == AVERROR(EAGAIN))
            continue; /* the decoder is full: take its frames, then send again */
        av_packet_unref(r->pkt);
        r->pending = 0;
        if (rc < 0)
            return md_fail(err, MD_ERR_FORMAT, "%s: corrupt video data: %s", r->path,
                           av_msg(rc, msg, sizeof msg));
    }
}

/* ------------------------------------------------------------- writing */

struct md_video_writer {
    char *path;
    AVFormatContext *fmt;
    AVCodecContext *enc;
    AVStream *stream;
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    int width, height; /* of the RGB frames given */
    int64_t next_pts;
    int header_written;
};

static void writer_free(md_video_writer *w)
{
    sws_freeContext(w->sws);
    av_packet_free(&w->pkt);
    av_frame_free(&w->frame);
    avcodec_free_context(&w->enc);
    if (w->fmt) {
        if (w->fmt->pb)
            avio_closep(&w->fmt->pb);
        avformat_free_context(w->fmt);
    }
    free(w->path);
    free(w);
}

void md_video_writer_abort(md_video_writer *w)
{
    if (!w)
        return;
    char *path = w->path;
    w->path = NULL;
    writer_free(w);
    if (path)
        remove(path);
    free(path);
}

md_status md_video_writer_open(const char *path, int width, int height, double fps,
                               md_video_writer **out, md_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return md_fail(err, MD_ERR_ARG, "md_video_writer_open: NULL argument");
    if (width < 2 || height < 2 || width > MD_MAX_DIM || height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "%s: cannot encode frames of %dx%d", path, width, height);
    if (!(fps > 0.0 && fps <= 1000.0))
        return md_fail(err, MD_ERR_ARG, "%s: frame rate %g outside (0, 1000]", path, fps);
    md_video_writer *w = md_calloc(1, sizeof *w, "video writer", err);
    if (!w)
        return MD_ERR_NOMEM;
    if (!(w->path = copy_path(path, err))) {
        free(w);
        return MD_ERR_NOMEM;
    }
    w->width = width;
    w->height = height;
    char msg[128];
    md_status st = MD_OK;
    int rc = avformat_alloc_output_context2(&w->fmt, NULL, NULL, path);
    if (rc < 0 || !w->fmt) {
        st = md_fail(err, MD_ERR_ARG, "%s: no video container for this extension (use .mp4, .mkv, "
                     ".avi or .mov)", path);
        goto fail;
    }
    /* H.264 where the build has an encoder (Debian's has libx264), MPEG-4
     * part 2 otherwise: both play everywhere. */
    const AVCodec *codec = NULL;
    if (avformat_query_codec(w->fmt->oformat, AV_CODEC_ID_H264, FF_COMPLIANCE_NORMAL) == 1)
        codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!codec && avformat_query_codec(w->fmt->oformat, AV_CODEC_ID_MPEG4, FF_COMPLIANCE_NORMAL) == 1)
        codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec)
        codec = avcodec_find_encoder(w->fmt->oformat->video_codec);
    if (!codec) {
        st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: no video encoder for this container", path);
        goto fail;
    }
    w->stream = avformat_new_stream(w->fmt, NULL);
    w->enc = avcodec_alloc_context3(codec);
    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    if (!w->stream || !w->enc || !w->frame || !w->pkt) {
        st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the video encoder", path);
        goto fail;
    }
    /* 4:2:0 wants even sizes: odd frames are scaled by one pixel. */
    w->enc->width = width & ~1;
    w->enc->height = height & ~1;
    w->enc->pix_fmt = AV_PIX_FMT_YUV420P;
    AVRational rate = av_d2q(fps, 100000);
    w->enc->time_base = av_inv_q(rate);
    w->enc->framerate = rate;
    w->enc->gop_size = 12;
    /* no B-frames: without reordering delay, MP4 edit lists cannot hide a
     * frame from readers */
    w->enc->max_b_frames = 0;
    w->enc->thread_count = 1;
    if (codec->id == AV_CODEC_ID_MPEG4) {
        w->enc->bit_rate = (int64_t)width * height * 4; /* about 4 bits a pixel a second */
        w->enc->qmax = 8;
    } else if (codec->id == AV_CODEC_ID_H264) {
        av_opt_set(w->enc->priv_data, "preset", "veryfast", 0);
        av_opt_set(w->enc->priv_data, "crf", "18", 0);
    }
    if (w->fmt->oformat->flags & AVFMT_GLOBALHEADER)
        w->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((rc = avcodec_open2(w->enc, codec, NULL)) < 0) {
        st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: cannot open the %s encoder: %s", path,
                     codec->name, av_msg(rc, msg, sizeof msg));
        goto fail;
    }
    avcodec_parameters_from_context(w->stream->codecpar, w->enc);
    w->stream->time_base = w->enc->time_base;
    w->frame->format = w->enc->pix_fmt;
    w->frame->width = w->enc->width;
    w->frame->height = w->enc->height;
    if (av_frame_get_buffer(w->frame, 0) < 0) {
        st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory for a video frame", path);
        goto fail;
    }
    w->sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, w->enc->width, w->enc->height,
                            AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
    if (!w->sws) {
        st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: cannot convert RGB to YUV", path);
        goto fail;
    }
    if ((rc = avio_open(&w->fmt->pb, path, AVIO_FLAG_WRITE)) < 0) {
        st = md_fail(err, MD_ERR_IO, "%s: cannot create: %s", path, av_msg(rc, msg, sizeof msg));
        goto fail;
    }
    if ((rc = avformat_write_header(w->fmt, NULL)) < 0) {
        st = md_fail(err, MD_ERR_IO, "%s: cannot write the header: %s", path,
                     av_msg(rc, msg, sizeof msg));
        goto fail;
    }
    w->header_written = 1;
    *out = w;
    return MD_OK;
fail:
    md_video_writer_abort(w);
    return st;
}

/* Sends a frame (NULL: flush) and writes every packet that comes out. */
static md_status encode(md_video_writer *w, AVFrame *frame, md_error *err)
{
    char msg[128];
    int rc = avcodec_send_frame(w->enc, frame);
    if (rc < 0)
        return md_fail(err, MD_ERR_IO, "%s: encoding failed: %s", w->path,
                       av_msg(rc, msg, sizeof msg));
    for (;;) {
        rc = avcodec_receive_packet(w->enc, w->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return MD_OK;
        if (rc < 0)
            return md_fail(err, MD_ERR_IO, "%s: encoding failed: %s", w->path,
                           av_msg(rc, msg, sizeof msg));
        /* a frame lasts one tick: without a duration, MP4's edit list ends
         * at the last frame's start and readers drop that frame */
        if (w->pkt->duration <= 0)
            w->pkt->duration = 1;
        av_packet_rescale_ts(w->pkt, w->enc->time_base, w->stream->time_base);
        w->pkt->stream_index = w->stream->index;
        rc = av_interleaved_write_frame(w->fmt, w->pkt);
        if (rc < 0)
            return md_fail(err, MD_ERR_IO, "%s: write failed: %s", w->path,
                           av_msg(rc, msg, sizeof msg));
    }
}

md_status md_video_write(md_video_writer *w, const md_image *img, md_error *err)
{
    if (!w || !img || !img->pixels)
        return md_fail(err, MD_ERR_ARG, "md_video_write: NULL argument");
    if (img->width != w->width || img->height != w->height)
        return md_fail(err, MD_ERR_ARG, "%s: frame %dx%d in a %dx%d video", w->path, img->width,
                       img->height, w->width, w->height);
    if (av_frame_make_writable(w->frame) < 0)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for a video frame", w->path);
    const uint8_t *src[4] = {img->pixels, NULL, NULL, NULL};
    int stride[4] = {img->width * 3, 0, 0, 0};
    sws_scale(w->sws, src, stride, 0, img->height, w->frame->data, w->frame->linesize);
    w->frame->pts = w->next_pts++;
    return encode(w, w->frame, err);
}

md_status md_video_writer_close(md_video_writer *w, md_error *err)
{
    if (!w)
        return md_fail(err, MD_ERR_ARG, "md_video_writer_close: NULL writer");
    md_status st = encode(w, NULL, err);
    if (st == MD_OK) {
        int rc = av_write_trailer(w->fmt);
        if (rc < 0) {
            char msg[128];
            st = md_fail(err, MD_ERR_IO, "%s: cannot finish the file: %s", w->path,
                         av_msg(rc, msg, sizeof msg));
        }
    }
    if (st == MD_OK && w->fmt->pb) {
        avio_flush(w->fmt->pb);
        if (w->fmt->pb->error < 0)
            st = md_fail(err, MD_ERR_IO, "%s: write failed", w->path);
    }
    if (st != MD_OK) {
        md_video_writer_abort(w);
        return st;
    }
    writer_free(w);
    return MD_OK;
}
