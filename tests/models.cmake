# tests/models.cmake — BERT (models/) tests and the CPU forward benchmark.

# The C half of the parity test: builds, initialises and runs BERT, checks what it can alone
# (init, parameter count, record-off identity, dropout reproducibility) and writes HDF5 for
# bert_parity.py, which compares against PyTorch in float64. The test is the Python driver.
add_executable(test_bert_parity test_bert_parity.c)
target_include_directories(test_bert_parity PRIVATE ${HDF5_INCLUDE_DIRS})
target_compile_definitions(test_bert_parity PRIVATE ${HDF5_DEFINITIONS})
target_link_libraries(test_bert_parity PRIVATE distill_models ${HDF5_LIBRARIES})

add_test(NAME bert_parity
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/bert_parity.py
                 --exe $<TARGET_FILE:test_bert_parity>)
set_tests_properties(bert_parity PROPERTIES
  LABELS parity
  ENVIRONMENT "${DISTILL_TEST_PY_ENV}"
  TIMEOUT 120)

# The C-side checks alone, for machines without the Python venv (the parity test runs them too).
add_test(NAME bert_model_checks
         COMMAND test_bert_parity ${CMAKE_CURRENT_BINARY_DIR}/bert_model_checks.h5
                 2 32 4 37 61 20 2 3 0.02 4 9 11)
set_tests_properties(bert_model_checks PROPERTIES LABELS unit TIMEOUT 60)

# Benchmark, not a test (scripts/bench_cpu_forward.sh runs it): BERT-base CPU forward, recording
# off, against OpenBLAS SGEMM on the same shapes in the same run.
add_executable(bench_bert_forward bench_bert_forward.c)
target_include_directories(bench_bert_forward PRIVATE ${CBLAS_INCLUDE_DIR})
target_link_libraries(bench_bert_forward PRIVATE distill_models)
