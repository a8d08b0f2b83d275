# tests/gpu.cmake — CUDA backend tests, registered only when the CUDA backend is built.
#   cuda_backend (unit): device handling; on a machine without a GPU it checks the no-GPU path
#                        (device_count() 0, init refused with a message), with one the memory path.
#   cuda_ops (gpu):      every CUDA kernel against the CPU reference kernel; exits 77 (skipped)
#                        when no GPU is present, never "passed" without running. Before looking
#                        for a device it checks that every kernel of engine/kernels.def is in the
#                        CUDA table and has a test (fails on any machine otherwise).
#   cuda_step (gpu):     TF32 off by default (fp32-level GEMM error), deterministic embedding
#                        backward (bitwise the CPU's), asynchronous H2D copies through pinned
#                        staging, and no cudaMalloc/cudaFree after a step's first run, range checks
#                        of index tensors without readbacks and (full builds) one readback per
#                        Trainer step on cuda, as train_step_readbacks on the CPU; 77 likewise.
# DISTILL_EXPECT_GPU=1 in the environment (scripts/gpu_check.sh) turns "no GPU" into a failure, here
# and in the other gpu-labelled tests (ckpt_device, hf_resave_cuda, losses_parity_cuda, mpi_nccl).
if(HAVE_CUDA)
  add_executable(test_cuda_backend test_cuda_backend.c)
  target_link_libraries(test_cuda_backend PRIVATE distill_engine)
  add_test(NAME cuda_backend COMMAND test_cuda_backend)
  set_tests_properties(cuda_backend PROPERTIES LABELS "unit;gpu" TIMEOUT 60)

  add_executable(test_cuda_ops test_cuda_ops.c)
  target_link_libraries(test_cuda_ops PRIVATE distill_engine ${MATH_LIB})
  add_test(NAME cuda_ops COMMAND test_cuda_ops)
  set_tests_properties(cuda_ops PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 300)

  add_executable(test_cuda_step test_cuda_step.c)
  target_link_libraries(test_cuda_step PRIVATE distill_engine ${MATH_LIB})
  if(TARGET distill_train) # the full build: also the trainer's one readback per step on cuda
    target_link_libraries(test_cuda_step PRIVATE distill_train)
    target_compile_definitions(test_cuda_step PRIVATE DISTILL_TEST_TRAINER=1)
  endif()
  add_test(NAME cuda_step COMMAND test_cuda_step)
  set_tests_properties(cuda_step PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
