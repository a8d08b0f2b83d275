# tests/teachers.cmake — several teachers (tests/test_multi_teacher.py, label e2e): on the toy task of
# tests/test_e2e.py, the logits the logits losses read equal the average (or weighted average) of the
# teachers' own `distill predict --output logits`, and a run whose hidden_mse reads teacher 2 learns.
# Each case takes ~5 s on one core. The config keys and their rejections are config_* tests.
foreach(case logits learn)
  add_test(NAME teachers_${case}
           COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_multi_teacher.py ${case}
                   --distill $<TARGET_FILE:distill>)
  set_tests_properties(teachers_${case} PROPERTIES LABELS e2e ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 180)
endforeach()
