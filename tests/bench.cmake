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
