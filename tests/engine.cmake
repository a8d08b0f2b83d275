# tests/engine.cmake — unit tests of the engine's op layer and CPU kernels (label: unit).
# Built against the engine library only.
add_executable(test_ops
  ${CMAKE_CURRENT_LIST_DIR}/test_ops.c
  ${CMAKE_CURRENT_LIST_DIR}/test_ops_core.c
  ${CMAKE_CURRENT_LIST_DIR}/op_check.c
)
target_link_libraries(test_ops PRIVATE distill_engine)
add_test(NAME engine_ops COMMAND test_ops)
# Two threads: the CI machine has two cores; the test itself also runs kernels at 1 and 3 threads
# to check that results do not depend on the thread count.
set_tests_properties(engine_ops PROPERTIES LABELS unit TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=2")
