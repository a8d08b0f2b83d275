# tests/e2e.cmake — end-to-end tests of the `distill` program (tests/test_e2e.py): a toy task
# (tests/e2e/toy_task.py) prepared, a teacher fine-tuned and a student distilled from it (every loss
# term falls, dev accuracy far above chance, eval/info/export/predict agree with the run); resume
# after an abrupt stop equals an uninterrupted run, bitwise; a regression fine-tune; the metrics
# plot script (scripts/plot_metrics.py); a two-stage config equals its stages chained by hand and
# resumes inside stage 2 bitwise; a student initialised from chosen teacher layers; the shipped
# general-distillation configs (general.yaml on unlabelled text, no labels or logits, a BertModel
# without a classifier; tiny-from-general.yaml starting from it; two-layer.yaml) run as shipped on
# the toy task through --set (~7 s). Each case works in its own temporary folder. Python:
# DISTILL_PYTHON, standard library only (matplotlib for the plot case). Each takes seconds on one
# core; the timeout leaves room for a loaded CI machine.
foreach(case learn resume stages regression plot teacher_layers bench bf16 general)
  add_test(NAME e2e_${case}
           COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_e2e.py ${case}
                   --distill $<TARGET_FILE:distill>)
  set_tests_properties(e2e_${case} PROPERTIES LABELS e2e ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 180
                       SKIP_RETURN_CODE 77)
endforeach()
