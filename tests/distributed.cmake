# tests/distributed.cmake — data-parallel training over MPI (tests/test_distributed.py), registered
# when the build has MPI and `mpirun` is found. Each case launches `mpirun --allow-run-as-root
# --oversubscribe -np 2` (CI runs as root on 2 cores) on the toy task: 2 ranks = 1 rank within fp32
# reduction order and bitwise run to run; resume across rank counts; a killed rank and a hung rank
# end the job within 60 s naming the rank; a NaN on one rank stops every rank with one message;
# ranks with different configs refuse; bench and train share the step. Label e2e (and mpi).
if(HAVE_MPI)
  find_program(DISTILL_MPIRUN NAMES mpirun mpiexec HINTS ${MPI_HOME}/bin)
  if(DISTILL_MPIRUN)
    foreach(case equal resume kill hang nan signal mismatch bench slurm)
      add_test(NAME mpi_${case}
               COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_distributed.py ${case}
                       --distill $<TARGET_FILE:distill> --mpirun ${DISTILL_MPIRUN})
      # RUN_SERIAL: each case starts 2 single-threaded ranks; beside other tests on 2 cores the
      # ranks would be oversubscribed (and the timing checks of kill/hang measured under load).
      set_tests_properties(mpi_${case} PROPERTIES LABELS "e2e;mpi" ENVIRONMENT "${DISTILL_TEST_PY_ENV}"
                           TIMEOUT 240 RUN_SERIAL TRUE)
    endforeach()
    if(HAVE_CUDA)
      add_test(NAME mpi_nccl
               COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_distributed.py nccl
                       --distill $<TARGET_FILE:distill> --mpirun ${DISTILL_MPIRUN})
      set_tests_properties(mpi_nccl PROPERTIES LABELS "gpu;mpi" ENVIRONMENT "${DISTILL_TEST_PY_ENV}"
                           TIMEOUT 240 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
    endif()
  endif()
endif()
