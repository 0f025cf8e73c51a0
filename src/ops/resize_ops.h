/* Image resampling that matches the reference implementations the models
 * were trained with: OpenCV's INTER_CUBIC and PyTorch's bicubic interpolate.
 * (PyTorch's bilinear align_corners=True is md_resize2d with
 * MD_COORD_ALIGN_CORNERS, cnn_ops.h.) */
#ifndef MD_RESIZE_OPS_H
#define MD_RESIZE_OPS_H

#include <stdbool.h>
#include <stddef.h>

/* OpenCV cv::resize(..., INTER_CUBIC) on an interleaved float64 image
 * [sh, sw, channels] -> [dh, dw, channels]: a = -0.75, half-pixel centres,
 * replicated borders, float coefficients, double accumulation. tmp needs
 * sh * dw * channels doubles. */
void md_resize_cubic_opencv(const double *src, int sh, int sw, int channels, double *dst, int dh,
                            int dw, double *tmp);

/* PyTorch F.interpolate(mode="bicubic", align_corners=False, antialias=False)
 * on planar [channels, sh, sw] -> [channels, dh, dw]. scale_h/scale_w are the
 * scale_factor values passed to interpolate (they set the sampling step as
 * 1/scale); 0 means "from the sizes". tmp needs sh * dw floats. */
void md_resize_bicubic_torch(const float *src, int channels, int sh, int sw, float *dst, int dh,
                             int dw, double scale_h, double scale_w, float *tmp);

#endif
