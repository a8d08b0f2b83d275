# tests/cli.cmake — the `predict`, `info` and `export` subcommands, run through the real binary.
set(DISTILL_CLI_VOCAB "${DISTILL_SHARED_DATA}/vocab/bert-base-uncased-vocab.txt")

# export (checkpoint -> HF folder, bit-exact; re-export; errors), info (each kind of path, damaged
# ones), predict from a checkpoint = predict from the folder exported from it. One CTest per case,
# each in its own scratch folder.
add_executable(test_cli test_cli.c)
target_link_libraries(test_cli PRIVATE distill_checkpoints)
foreach(case export info predict)
  add_test(NAME cli_${case}
           COMMAND test_cli ${case} $<TARGET_FILE:distill> ${DISTILL_CLI_VOCAB}
                   ${CMAKE_CURRENT_BINARY_DIR}/cli_${case})
  set_tests_properties(cli_${case} PROPERTIES LABELS unit TIMEOUT 120)
endforeach()

# Issue 8: help and version (part 3), eval/predict input checks (part 4); each error message
# checked and nothing written. One CTest per item.
foreach(case version help train_help config_value usage_flags help_examples info_counts
        eval_positions eval_vocab eval_labels eval_truncated predict_positions)
  add_test(NAME cli_${case}
           COMMAND test_cli ${case} $<TARGET_FILE:distill> ${DISTILL_CLI_VOCAB}
                   ${CMAKE_CURRENT_BINARY_DIR}/cli_${case})
  set_tests_properties(cli_${case} PROPERTIES LABELS unit TIMEOUT 120
                       ENVIRONMENT "DISTILL_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endforeach()
# bash completion (scripts/distill-completion.bash) offers every option of every command's help.
add_test(NAME cli_completion
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_completion.sh $<TARGET_FILE:distill>
                 ${CMAKE_SOURCE_DIR}/scripts/distill-completion.bash)
set_tests_properties(cli_completion PROPERTIES LABELS unit TIMEOUT 60)

# predict on a small random classifier against scripts/torch_bert.py: logits, probs, label, input
# forms (TSV with/without header, CSV, JSONL), batching order, truncation, error paths.
add_test(NAME cli_predict_outputs
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_predict_outputs.py
                 --distill $<TARGET_FILE:distill> --vocab ${DISTILL_CLI_VOCAB})
set_tests_properties(cli_predict_outputs PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 180)

# Real weights: all-MiniLM-L6-v2 sentence embeddings (mean pooling, normalised; [CLS]) through
# `distill predict`, against the float64 reference fed by the `tokenizers` package.
add_test(NAME cli_predict_minilm
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_predict_minilm.py
                 --distill $<TARGET_FILE:distill>)
set_tests_properties(cli_predict_minilm PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 180)
