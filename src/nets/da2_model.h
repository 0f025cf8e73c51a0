/* Depth Anything V2 internals exposed for tests and benchmarks (the public
 * entry point is md_model_load). */
#ifndef MD_MODELS_DA2_MODEL_H
#define MD_MODELS_DA2_MODEL_H

#include "metricdepth.h"

/* The official infer_image preprocessing: RGB / 255, keep-aspect lower-bound
 * resize (OpenCV INTER_CUBIC) so both sides are >= input_size and multiples
 * of 14, ImageNet mean/std. *chw is a new [3, *height, *width] buffer. */
md_status md_da2_preprocess(const md_image *img, int input_size, float **chw, int *height,
                            int *width, md_error *err);

/* Runs the ViT encoder of an opened DA2 backend (impl from md_da2_model_open)
 * on a preprocessed [3, height, width] input. feats[k] (k = 0..3) receive new
 * [1 + patches, embed] arrays (class token first) after the final LayerNorm. */
md_status md_da2_encode(const void *impl, const float *chw, int height, int width, float *feats[4],
                        int *tokens, int *embed, md_error *err);

#endif
