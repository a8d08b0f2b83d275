# tests/io.cmake — io/: the atomic write and the clean-up of dead writers' temporaries
# (io/atomic.h), and the HDF5 helpers (io/h5.h). One CTest per case of test_io, each in its own
# temporary folder, in well under a second.
add_executable(test_io test_io.c)
target_link_libraries(test_io PRIVATE distill_io)
foreach(case commit abort crash errors dir names h5)
  add_test(NAME io_${case} COMMAND test_io ${case})
  set_tests_properties(io_${case} PROPERTIES LABELS unit TIMEOUT 60)
endforeach()
