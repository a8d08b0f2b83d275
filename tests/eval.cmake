# tests/eval.cmake — `distill eval`'s metrics: macro-F1 and per-class counts on a three-class task
# (binary F1 on two) against a numpy reference from `distill predict`'s labels, and a 3-class
# fine-tune's training log naming macro_f1.
add_test(NAME eval_multiclass
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_eval_multiclass.py
                 --distill $<TARGET_FILE:distill> --vocab ${DISTILL_SHARED_DATA}/vocab/bert-base-uncased-vocab.txt)
set_tests_properties(eval_multiclass PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 120)
