/* Private internals of the scale CNN (src/scale/scale_cnn.c), exposed so
 * tests can build tiny networks and check every piece: the layer list of an
 * architecture at any input size, PyTorch-style initialisation, batched
 * forward and backward passes, preprocessing and the PRNG. */
#ifndef MD_SCALE_CNN_H
#define MD_SCALE_CNN_H

#include "metricdepth.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { MD_CNN_CONV = 0, MD_CNN_MAXPOOL = 1, MD_CNN_GAP = 2, MD_CNN_FC = 3 } md_cnn_kind;

typedef struct {
    md_cnn_kind kind;
    bool relu;                  /* ReLU fused after conv / fc */
    int in_c, in_h, in_w;       /* per-sample input shape (fc: in_c features, h = w = 1) */
    int out_c, out_h, out_w;
    int k, stride, pad;         /* conv kernel / pool window */
    size_t w_off, w_n, b_off, b_n; /* parameters (conv, fc) in the flat vector */
    char name[16];              /* "conv1", "fc2" (parameterised layers only) */
} md_cnn_layer;

#define MD_CNN_MAX_LAYERS 12

typedef struct {
    md_scale_arch arch;
    int input_size;
    int n_layers;
    md_cnn_layer layers[MD_CNN_MAX_LAYERS];
    size_t n_params; /* all weights and biases, in layer order (weight, then bias) */
} md_cnn_spec;

/* The layers of arch at a square input of input_size (>= 4 for paper, >= 1
 * for compact). */
md_status md_cnn_spec_init(md_cnn_spec *spec, md_scale_arch arch, int input_size, md_error *err);
static inline size_t md_cnn_layer_in_size(const md_cnn_layer *l)
{
    return (size_t)l->in_c * l->in_h * l->in_w;
}
static inline size_t md_cnn_layer_out_size(const md_cnn_layer *l)
{
    return (size_t)l->out_c * l->out_h * l->out_w;
}

/* Activations and scratch for up to `batch` samples, allocated once. act[0]
 * is the input (batch x 3 x S x S), act[l + 1] the output of layer l (after
 * its fused ReLU); with training, the gradient and argmax buffers too.
 * threads > 1: a pool of that many; convolutions run images in parallel
 * (fixed image ranges per task, each convolution single-threaded inside;
 * weight gradients summed over the tasks in order), fully connected layers
 * and pooling split over the pool. Results then depend on the thread count
 * but not on scheduling. */
typedef struct {
    int batch;
    bool training;
    int threads;
    md_threadpool *pool; /* NULL with one thread */
    float *wpack;        /* a convolution's weights packed for the forward pass */
    float *act[MD_CNN_MAX_LAYERS + 1];
    int32_t *argmax[MD_CNN_MAX_LAYERS];
    float *grad[2];  /* ping-pong gradient buffers (largest activation) */
    float *col, *dcol; /* threads x col_floats each */
    size_t col_floats;
    float *partial;  /* threads x partial_floats: per-task conv weight gradients */
    size_t partial_floats;
} md_cnn_work;

md_status md_cnn_work_init(md_cnn_work *w, const md_cnn_spec *spec, int batch, bool training,
                           int threads, md_error *err);
void md_cnn_work_free(md_cnn_work *w);

/* PyTorch's default Conv2d / Linear init: weights and biases uniform in
 * +-1/sqrt(fan_in), drawn in layer order from a generator seeded by seed. */
void md_cnn_init_params(const md_cnn_spec *spec, float *params, uint64_t seed);

/* Forward over n <= w->batch samples in w->act[0]; returns w->act[n_layers]
 * (n outputs). */
const float *md_cnn_forward(const md_cnn_spec *spec, const float *params, md_cnn_work *w, int n);
/* After md_cnn_forward on the same samples: grads (n_params, overwritten) =
 * dL/dparams given dout = dL/doutput (n values). */
void md_cnn_backward(const md_cnn_spec *spec, const float *params, md_cnn_work *w, int n,
                     const float *dout, float *grads);

/* Image -> planar 3 x size x size floats: bilinear resize with half-pixel
 * centres (PyTorch interpolate(bilinear, align_corners=False, antialias=False),
 * i.e. torchvision Resize on tensors without antialias) of the 0..255 values,
 * then (x / 255 - 0.5) / 0.5. tmp holds 3 * width * height floats. */
md_status md_cnn_preprocess(const md_image *img, int size, float *out, float *tmp, md_error *err);

/* splitmix64: the generator behind init, split and shuffles. */
uint64_t md_cnn_rand_next(uint64_t *state);
/* Uniform in [0, 1) with 24 random bits. */
float md_cnn_rand_unit(uint64_t *state);

/* Learning rate of 0-based epoch e under StepLR(step_size, gamma). */
double md_cnn_step_lr(double lr, int epoch, int step_size, double gamma);

/* ------------------------------------------------- the CNN scale models */

/* A trained RGB-only scale CNN (paper or compact). md_scale_model wraps it;
 * these mirror the public md_scale_model_* calls. */
typedef struct md_cnn_model md_cnn_model;

md_status md_cnn_model_train(const md_image *images, const double *log_scales, size_t n,
                             const md_train_options *opts, md_cnn_model **out, md_train_log *log,
                             md_error *err);
md_status md_cnn_model_predict(md_cnn_model *model, const md_image *img, double *log_scale,
                               md_error *err);
md_status md_cnn_model_estimate(const md_cnn_model *model, const md_image *img,
                                const md_depth *base, md_scale_estimate *out, md_error *err);
md_status md_cnn_model_save(const md_cnn_model *model, const char *path, md_error *err);
md_status md_cnn_model_load(const char *path, md_cnn_model **out, md_error *err);
const char *md_cnn_model_describe(const md_cnn_model *model);
const char *md_cnn_model_base(const md_cnn_model *model);
void md_cnn_model_free(md_cnn_model *model);

#endif
