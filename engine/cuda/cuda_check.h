/*
 * cuda_check.h — one check macro per library status type used by the CUDA backend: the CUDA
 * runtime (CUDA_CHECK, and CUDA_CHECK_LAUNCH after a kernel launch), cuBLAS (CUBLAS_CHECK), cuDNN
 * (CUDNN_CHECK, when built with cuDNN) and NCCL (NCCL_CHECK, when built with NCCL).
 *
 * Promise: a failed call aborts the process after printing, on one line,
 *   distill: error: FILE:LINE: LIBRARY call `CALL` failed: NAME (the library's own message)
 * These are for calls that cannot fail in a correct program on a working device (a kernel launch,
 * a copy, a GEMM). Expected failures (no GPU, no driver, a bad device index) are handled by the
 * caller and returned as DISTILL_ERR, never passed through these macros.
 *
 * Internal to engine/cuda/: include only from .cu files.
 */
#ifndef DISTILL_CUDA_CHECK_H
#define DISTILL_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef DISTILL_HAVE_CUDNN
#include <cudnn.h>
#endif
#ifdef DISTILL_HAVE_NCCL
#include <nccl.h>
#endif

/* Prints the one-line report and aborts. */
static inline void cuda_check_fail(const char *lib, const char *call, const char *file, int line,
                                   const char *name, const char *msg) {
    fprintf(stderr, "distill: error: %s:%d: %s call `%s` failed: %s (%s)\n", file, line, lib, call,
            name ? name : "?", msg ? msg : "?");
    fflush(stderr);
    abort();
}

#define CUDA_CHECK(call)                                                                       \
    do {                                                                                       \
        cudaError_t cuda_check_e_ = (call);                                                    \
        if (cuda_check_e_ != cudaSuccess)                                                      \
            cuda_check_fail("CUDA", #call, __FILE__, __LINE__, cudaGetErrorName(cuda_check_e_), \
                            cudaGetErrorString(cuda_check_e_));                                \
    } while (0)

/* After a <<<...>>> launch: reports a bad launch configuration (asynchronous faults surface at
 * the next synchronising call, which is itself checked). */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                      \
    do {                                                                                        \
        cublasStatus_t cublas_check_s_ = (call);                                                \
        if (cublas_check_s_ != CUBLAS_STATUS_SUCCESS)                                           \
            cuda_check_fail("cuBLAS", #call, __FILE__, __LINE__,                                \
                            cublasGetStatusName(cublas_check_s_),                               \
                            cublasGetStatusString(cublas_check_s_));                            \
    } while (0)

#ifdef DISTILL_HAVE_CUDNN
#define CUDNN_CHECK(call)                                                                       \
    do {                                                                                        \
        cudnnStatus_t cudnn_check_s_ = (call);                                                  \
        if (cudnn_check_s_ != CUDNN_STATUS_SUCCESS)                                             \
            cuda_check_fail("cuDNN", #call, __FILE__, __LINE__, "cudnnStatus_t",                \
                            cudnnGetErrorString(cudnn_check_s_));                               \
    } while (0)
#endif

#ifdef DISTILL_HAVE_NCCL
#define NCCL_CHECK(call)                                                                        \
    do {                                                                                        \
        ncclResult_t nccl_check_r_ = (call);                                                    \
        if (nccl_check_r_ != ncclSuccess)                                                       \
            cuda_check_fail("NCCL", #call, __FILE__, __LINE__, "ncclResult_t",                  \
                            ncclGetErrorString(nccl_check_r_));                                 \
    } while (0)
#endif

#endif
