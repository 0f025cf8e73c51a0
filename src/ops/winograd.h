/* Winograd F(4x4, 3x3): the transforms of a float32 3x3 stride-1 convolution
 * run as 36 matrix products (conv.c drives them; see winograd.c). */
#ifndef MD_OPS_WINOGRAD_H
#define MD_OPS_WINOGRAD_H

#include <stddef.h>

/* Element (o, c) of U_xi = G g G^T for filter g = w[o][c] (3x3), xi = 6 i + j. */
float md_wino_weight(const float *w, int cin, int xi, int o, int c);
/* V = B^T d B of `tiles` (a multiple of 16) tiles of one channel: rows holds
 * the 6 input rows of a tile row (row stride ld), column 4 t the tile's
 * first; each row holds 4 tiles + 8 values. Position xi of tile t goes to
 * v[xi * vstride + t]. */
void md_wino_input(const float *rows, size_t ld, int tiles, float *v, size_t vstride);
/* One output channel of a tile row: Y = A^T M A from m[xi * mstride + t],
 * then out[r][x] = clamp(Y + bias, lo, hi) + add[r][x] (add may be NULL) for
 * rows r < rows and columns x < cols; tiles a multiple of 16. */
void md_wino_output(const float *m, size_t mstride, int tiles, float bias, float lo, float hi,
                    float *out, size_t ldo, const float *add, size_t ld_add, int rows, int cols);

#endif
