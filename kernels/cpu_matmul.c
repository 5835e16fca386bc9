/* cpu_matmul.c - the one GEMM of the CPU backend: OpenBLAS sgemm, row-major.
 *
 * Every linear layer of the model is a GEMM in one of three layouts (W is a
 * Hugging Face weight, (out, in)):
 *   forward   Y(N,out)  = X(N,in) W^T          gemm(0, 1, ...)
 *   dX        dX(N,in)  = dY(N,out) W          gemm(0, 0, ...)
 *   dW        dW(out,in) += dY^T X             gemm(1, 0, ..., beta = 1)
 * so no weight is ever transposed in memory.  OpenBLAS threads the call with
 * OpenMP; called from inside an OpenMP parallel region (the attention ops)
 * it runs on the calling thread alone. */
#include <cblas.h>

#include "kernels.h"

void kn_cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* sgemm with K = 0 still scales C by beta; do it here explicitly */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
