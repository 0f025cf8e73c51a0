#include "ops/tensor_ops.h"

#include <cblas.h>

void md_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Declared by OpenBLAS's cblas.h; kept behind our own name so callers do not
 * depend on which BLAS is linked. */
void md_gemm_set_threads(int threads)
{
    if (threads > 0)
        openblas_set_num_threads(threads);
}
