#include "ops/dvec.h"

#include <math.h>

/* Four partial sums: the compiler keeps them in vector lanes without
 * reassociating anything the source does not. */
double md_ddot(size_t n, const double *x, const double *y)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++)
        s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

/* Against float rows: eight partial sums, one 512-bit register of doubles
 * (the scale predictor's k-NN reads 363 rows of 7280 per image; one
 * dependent chain made it 1.8 ms, a quarter of FastDepth's network time). */
double md_ddot_f(size_t n, const double *x, const float *y)
{
    double s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += x[i + k] * (double)y[i + k];
    for (; i < n; i++)
        s[0] += x[i] * (double)y[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* s[k] += (x[i + k] - y[i + k])^2 for i < n, a multiple of 8. */
static inline void sqdist8(double s[8], size_t n, const double *x, const float *y)
{
    for (size_t i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++) {
            double d = x[i + k] - (double)y[i + k];
            s[k] += d * d;
        }
}

double md_dsqdist_f_below(size_t n, const double *x, const float *y, double bound)
{
    /* Blocks of 512 values between the checks: a check (a reduction of the
     * eight lanes) costs under one percent of a block. */
    enum { BLOCK = 512 };
    double s[8] = {0};
    size_t i = 0, whole = n & ~(size_t)7;
    for (; i + BLOCK <= whole; i += BLOCK) {
        sqdist8(s, BLOCK, x + i, y + i);
        /* Every lane only grows (each term is >= 0 and rounding is
         * monotone), and so does this sum of them: it bounds the whole
         * distance from below. */
        double part = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        if (part > bound)
            return part;
    }
    sqdist8(s, whole - i, x + i, y + i);
    for (i = whole; i < n; i++) {
        double d = x[i] - (double)y[i];
        s[0] += d * d;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

double md_dsqdist_f(size_t n, const double *x, const float *y)
{
    return md_dsqdist_f_below(n, x, y, INFINITY);
}

void md_daxpy(size_t n, double a, const double *x, double *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* Blocks of 4 x 4 dot products share their row loads (16 sums per 8 loads). */
void md_dgram(size_t m, size_t p, const double *Z, double *G)
{
    for (size_t i0 = 0; i0 < m; i0 += 4)
        for (size_t j0 = i0; j0 < m; j0 += 4) {
            size_t ni = m - i0 < 4 ? m - i0 : 4, nj = m - j0 < 4 ? m - j0 : 4;
            double acc[4][4] = {{0}};
            for (size_t k = 0; k < p; k++)
                for (size_t a = 0; a < ni; a++) {
                    double za = Z[(i0 + a) * p + k];
                    for (size_t b = 0; b < nj; b++)
                        acc[a][b] += za * Z[(j0 + b) * p + k];
                }
            for (size_t a = 0; a < ni; a++)
                for (size_t b = 0; b < nj; b++) {
                    G[(i0 + a) * m + j0 + b] = acc[a][b];
                    G[(j0 + b) * m + i0 + a] = acc[a][b];
                }
        }
}

int md_dposv(size_t n, double *A, double *b)
{
    /* A = L L^T, L in the lower triangle (row-major, row i of L contiguous) */
    for (size_t j = 0; j < n; j++) {
        double d = A[j * n + j] - md_ddot(j, A + j * n, A + j * n);
        if (!(d > 0.0))
            return (int)j + 1;
        double ljj = sqrt(d);
        A[j * n + j] = ljj;
        for (size_t i = j + 1; i < n; i++)
            A[i * n + j] = (A[i * n + j] - md_ddot(j, A + i * n, A + j * n)) / ljj;
    }
    /* L y = b, then L^T x = y */
    for (size_t i = 0; i < n; i++)
        b[i] = (b[i] - md_ddot(i, A + i * n, b)) / A[i * n + i];
    for (size_t i = n; i-- > 0;) {
        double s = b[i];
        for (size_t k = i + 1; k < n; k++)
            s -= A[k * n + i] * b[k];
        b[i] = s / A[i * n + i];
    }
    return 0;
}
