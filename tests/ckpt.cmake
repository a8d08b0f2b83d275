# tests/ckpt.cmake — HDF5 training checkpoints (checkpoints/ckpt.h): one CTest per case of
# test_ckpt (each runs in its own temporary directory, in well under a second).
add_executable(test_ckpt test_ckpt.c)
target_link_libraries(test_ckpt PRIVATE distill_checkpoints)
foreach(case roundtrip crash hash rotate latest unwritable)
  add_test(NAME ckpt_${case} COMMAND test_ckpt ${case})
  set_tests_properties(ckpt_${case} PROPERTIES LABELS unit TIMEOUT 60)
endforeach()
# ckpt_device (gpu): skips (77) without a CUDA device, fails then under DISTILL_EXPECT_GPU=1.
add_test(NAME ckpt_device COMMAND test_ckpt device)
set_tests_properties(ckpt_device PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 60)
