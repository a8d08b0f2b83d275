# tests/losses.cmake — losses/: unit tests (validation messages, layer maps, requests, schedules,
# projections) and PyTorch parity of every term's value and gradients.
add_executable(test_losses_unit test_losses_unit.c)
target_link_libraries(test_losses_unit PRIVATE distill_losses)
add_test(NAME losses_unit COMMAND test_losses_unit)
set_tests_properties(losses_unit PROPERTIES LABELS unit TIMEOUT 60)

# The C program writes inputs, outputs and gradients; the Python script recomputes them in float64.
add_executable(test_losses_parity test_losses_parity.c)
target_link_libraries(test_losses_parity PRIVATE distill_losses)
add_test(NAME losses_parity
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_losses_parity.py
                 $<TARGET_FILE:test_losses_parity>)
set_tests_properties(losses_parity PROPERTIES LABELS parity TIMEOUT 120 SKIP_RETURN_CODE 77
                     ENVIRONMENT "${DISTILL_TEST_PY_ENV}")

# The same parity on cuda:0 (label gpu): skips without a device, fails then with DISTILL_EXPECT_GPU=1.
if(HAVE_CUDA)
  add_test(NAME losses_parity_cuda
           COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_losses_parity.py
                   $<TARGET_FILE:test_losses_parity> cuda)
  set_tests_properties(losses_parity_cuda PROPERTIES LABELS "gpu;parity" TIMEOUT 120
                       SKIP_RETURN_CODE 77 ENVIRONMENT "${DISTILL_TEST_PY_ENV}")
endif()
