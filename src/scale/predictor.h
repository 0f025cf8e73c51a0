/* The encoder scale predictor (src/scale/predictor.c): ridge regression of
 * ln s* on the base network's pooled encoder features, a bootstrap ensemble,
 * a distance from the training data, and the gate calibrated on the training
 * data. Internal: md_scale_model (scale_model.c) wraps it. */
#ifndef MD_SCALE_PREDICTOR_H
#define MD_SCALE_PREDICTOR_H

#include "formats/weights.h"
#include "metricdepth.h"

#include <stdint.h>

/* Constants of the recipe, documented in docs/adaptive-scaling.md. */
#define MD_ENC_ALPHA_DEFAULT 10.0 /* lambda = alpha x features, when CV cannot choose */
#define MD_ENC_MEMBERS 10         /* bootstrap members of the shipped ensemble */
#define MD_ENC_CAL_MEMBERS 5      /* members of each calibration fit */
#define MD_ENC_KNN 5              /* neighbours of the distance */
#define MD_ENC_MIN_GROUP 10       /* smaller groups are merged into one "misc" group */

typedef struct md_enc_model md_enc_model;

typedef struct {
    const float *features;       /* p values */
    double log_scale;            /* the target ln s* */
    int group;                   /* 0-based group id, after merging */
    const md_scale_curve *curve; /* error against scale; NULL: ln-space errors instead */
} md_enc_sample;

typedef struct {
    double alpha;     /* > 0: use it; 0: choose by leave-one-group-out CV */
    int members;      /* bootstrap members (default MD_ENC_MEMBERS) */
    uint64_t seed;
    uint64_t signature; /* of the features */
    int n_groups;
    int misc_group;   /* the merged group's id, -1 if none */
} md_enc_options;

/* Trains on n samples of p features. summary (may be NULL) gets a malloc'd
 * text: the alpha scores, the calibration and its constants. */
md_status md_enc_train(const md_enc_sample *samples, size_t n, size_t p, const md_enc_options *o,
                       md_enc_model **out, char **summary, md_error *err);
md_status md_enc_estimate(const md_enc_model *m, const md_features *f, md_scale_estimate *out,
                          md_error *err);
void md_enc_free(md_enc_model *m);
size_t md_enc_features(const md_enc_model *m, uint64_t *signature);
size_t md_enc_train_count(const md_enc_model *m);

/* One ridge fit on all n samples (no bootstrap), standardised as in
 * training, for tests: mu, sd and b (p values each; b in standardised units)
 * and the intercept *c. */
md_status md_enc_fit_once(const md_enc_sample *s, size_t n, size_t p, double alpha, double *mu,
                          double *sd, double *b, double *c, md_error *err);

/* Save / load through safetensors: the tensors (pointing into the model) and
 * the metadata values (static strings are copied by the writer). */
#define MD_ENC_TENSORS 5
#define MD_ENC_META 10
void md_enc_tensors(const md_enc_model *m, md_tensor_out t[MD_ENC_TENSORS],
                    char meta_values[MD_ENC_META][64], md_meta_entry meta[MD_ENC_META]);
md_status md_enc_from_weights(const md_weights *w, const md_meta_entry *meta, size_t n_meta,
                              const char *path, md_enc_model **out, md_error *err);

#endif
