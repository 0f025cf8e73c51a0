/* Double-precision helpers for small statistics (the scale predictor's ridge
 * regressions): what it once took from a BLAS, without a BLAS's process-wide
 * thread pool. Single-threaded, deterministic. */
#ifndef MD_OPS_DVEC_H
#define MD_OPS_DVEC_H

#include <stddef.h>

/* x . y over n values. */
double md_ddot(size_t n, const double *x, const double *y);
/* x . y over n values, y float32 (a model's stored coefficients). */
double md_ddot_f(size_t n, const double *x, const float *y);
/* sum (x - y)^2 over n values, y float32 (a stored training row). */
double md_dsqdist_f(size_t n, const double *x, const float *y);
/* The same sum, the same bits, unless a partial sum of it exceeds bound:
 * then that partial sum (> bound, <= the whole sum) as soon as it is seen.
 * For nearest-neighbour searches, which need no distance past the k-th. */
double md_dsqdist_f_below(size_t n, const double *x, const float *y, double bound);
/* y += a x over n values. */
void md_daxpy(size_t n, double a, const double *x, double *y);
/* G (m x m, row-major, both triangles) = Z Z^T for Z (m x p, row-major). */
void md_dgram(size_t m, size_t p, const double *Z, double *G);
/* Solves A x = b for a symmetric positive definite A (n x n, row-major, both
 * triangles) by Cholesky: A is overwritten by its factor, b by x. Returns 0,
 * or j + 1 when the leading minor of order j + 1 is not positive definite
 * (LAPACK dposv's info). */
int md_dposv(size_t n, double *A, double *b);

#endif
