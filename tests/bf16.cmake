# tests/bf16.cmake — bf16 mixed precision on the CPU (oneDNN).
#   engine_bf16_gemm (unit): the bf16 GEMM against float64 references of the bf16-rounded and of
#                            the fp32 inputs, with tolerances derived from bf16 and fp32 rounding;
#                            exits 77 (skipped) on a CPU without AVX512-BF16/AMX or without oneDNN.
add_executable(test_bf16 test_bf16.c)
target_link_libraries(test_bf16 PRIVATE distill_engine ${MATH_LIB})
add_test(NAME engine_bf16_gemm COMMAND test_bf16)
set_tests_properties(engine_bf16_gemm PROPERTIES LABELS unit SKIP_RETURN_CODE 77 TIMEOUT 120)
