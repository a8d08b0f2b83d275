/* engine/cuda/cuda_backend.cu — being written (issue 2). */
