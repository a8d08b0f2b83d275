# tests/faults.cmake — what a run does when the world misbehaves (tests/test_faults.py): stop
# signals (checkpoint, exit 75, resume equals an uninterrupted run), a second signal, non-finite
# losses and gradients (skipped steps, train.max_bad_steps), writes that fail (file-size limit:
# previous file intact, no temporary left, errno in words), and SIGKILL at random moments
# (scripts/crash_test.sh --kills 4). Label e2e; each case a few seconds to half a minute.
foreach(case signal twice nonfinite disk crash)
  add_test(NAME faults_${case}
           COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_faults.py ${case}
                   --distill $<TARGET_FILE:distill>)
  set_tests_properties(faults_${case} PROPERTIES LABELS e2e ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 300)
endforeach()
