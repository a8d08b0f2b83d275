# tests/bench.cmake — the GEMM-rate program of scripts/bench_vs_torch.sh, and a smoke test of that
# script.
#
# bench_gemm (tests/bench_gemm.c) is built but is not a test: it times OpenBLAS SGEMM and oneDNN's
# bf16 matmul and asserts nothing. bench_vs_torch_smoke runs the whole script in --smoke mode:
# tiny models and shapes, one round, Debian's PyTorch only (no PyPI venv is made), and checks the
# table it prints is well-formed (every contender present, n/a with a reason where one cannot run).
# No timing is asserted. ~10 s on an idle 2-core machine; the timeout leaves room for a loaded one.
add_executable(bench_gemm bench_gemm.c)
target_include_directories(bench_gemm PRIVATE ${CBLAS_INCLUDE_DIR})
target_link_libraries(bench_gemm PRIVATE OpenMP::OpenMP_C ${BLAS_LIBRARIES} ${MATH_LIB})
if(HAVE_DNNL)
  target_compile_definitions(bench_gemm PRIVATE HAVE_DNNL=1)
  target_link_libraries(bench_gemm PRIVATE DNNL::dnnl)
endif()

add_test(NAME bench_vs_torch_smoke
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_bench_vs_torch.py
                 --script ${CMAKE_SOURCE_DIR}/scripts/bench_vs_torch.sh
                 --distill $<TARGET_FILE:distill> --bench-gemm $<TARGET_FILE:bench_gemm>)
set_tests_properties(bench_vs_torch_smoke PROPERTIES LABELS e2e ENVIRONMENT "${DISTILL_TEST_PY_ENV}"
                     TIMEOUT 120)

# bench_gemm_rule (tests/bench_gemm_rule.c): the engine's fp32 GEMM on OpenBLAS against oneDNN per
# BERT shape, the measurement behind DISTILL_FP32_GEMM=auto (scripts/bench_gemm_rule.sh). Not a test.
add_executable(bench_gemm_rule bench_gemm_rule.c)
target_link_libraries(bench_gemm_rule PRIVATE distill_engine)

# engine_step_alloc (unit): no heap allocation in a training step after the second — every malloc
# of steps 3 and 4 of a Trainer's distillation step counted by an interposed allocator
# (tests/test_step_alloc.c); skipped under AddressSanitizer. About a second.
add_executable(test_step_alloc test_step_alloc.c)
target_link_libraries(test_step_alloc PRIVATE distill_train)
# engine_step_alloc: fp32 GEMMs on OpenBLAS, no allocation at all; engine_step_alloc_onednn: the
# default fp32 GEMMs on oneDNN, none outside oneDNN's own executor (which allocates per call).
add_test(NAME engine_step_alloc COMMAND test_step_alloc)
set_tests_properties(engine_step_alloc PROPERTIES LABELS unit TIMEOUT 60 SKIP_RETURN_CODE 77
                     ENVIRONMENT "DISTILL_FP32_GEMM=openblas")
add_test(NAME engine_step_alloc_onednn COMMAND test_step_alloc --allow-onednn)
set_tests_properties(engine_step_alloc_onednn PROPERTIES LABELS unit TIMEOUT 60 SKIP_RETURN_CODE 77)

# engine_gemm_lib (unit): the fp32 GEMM on OpenBLAS and on oneDNN, each within the fp32 error
# bound of a float64 reference (odd shapes, transposes, strides, batches), and DISTILL_FP32_GEMM's
# override and refusal (tests/test_gemm_lib.c). Under a second.
add_executable(test_gemm_lib test_gemm_lib.c)
target_link_libraries(test_gemm_lib PRIVATE distill_engine)
add_test(NAME engine_gemm_lib COMMAND test_gemm_lib)
set_tests_properties(engine_gemm_lib PROPERTIES LABELS unit TIMEOUT 60)
