/*
 * metricdepth_video: video in and out through FFmpeg's libraries, its own
 * library (libmetricdepth_video) so that the core library needs neither
 * FFmpeg nor what FFmpeg links (Debian's libavcodec pulls in librsvg and
 * cairo). Same conventions as metricdepth.h: md_status returns, messages that
 * name the file, nothing printed. FFmpeg's log level is the application's to
 * set (av_log_set_level); this library leaves it alone.
 */
#ifndef METRICDEPTH_VIDEO_H
#define METRICDEPTH_VIDEO_H

#include "metricdepth.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Videos through FFmpeg's libraries. Frames come out as 8-bit RGB. */
typedef struct md_video_reader md_video_reader;
typedef struct {
    int width, height;
    double fps;      /* 0 when unknown */
    int64_t frames;  /* from the container; 0 when unknown */
    char codec[32];
} md_video_info;

md_status md_video_open(const char *path, md_video_reader **out, md_video_info *info,
                        md_error *err);
/* The next frame; *got = 0 (and MD_OK) at the end. */
md_status md_video_read(md_video_reader *r, md_image *frame, int *got, md_error *err);
void md_video_close(md_video_reader *r);

/* Encodes RGB frames of one size into path; the container comes from the
 * extension (.mp4, .mkv, .avi, .mov), the codec is H.264 where FFmpeg has an
 * encoder for it, else MPEG-4 part 2. Odd sizes are scaled to even ones. */
typedef struct md_video_writer md_video_writer;
md_status md_video_writer_open(const char *path, int width, int height, double fps,
                               md_video_writer **out, md_error *err);
md_status md_video_write(md_video_writer *w, const md_image *frame, md_error *err);
/* Finishes the file and frees the writer (on failure the file is removed). */
md_status md_video_writer_close(md_video_writer *w, md_error *err);
/* Frees the writer and removes the unfinished file. */
void md_video_writer_abort(md_video_writer *w);

#ifdef __cplusplus
}
#endif
#endif
