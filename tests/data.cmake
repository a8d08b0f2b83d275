# tests/data.cmake — tokenizer, prepare, dataset and loader tests (included by tests/CMakeLists.txt).
set(DISTILL_VOCAB "${DISTILL_SHARED_DATA}/vocab/bert-base-uncased-vocab.txt")

add_executable(test_tokenizer_tool test_tokenizer_tool.c)
target_link_libraries(test_tokenizer_tool PRIVATE distill_data)

add_test(NAME tokenizer_parity
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_parity.py
                 $<TARGET_FILE:test_tokenizer_tool> ${DISTILL_VOCAB} ${DISTILL_SHARED_DATA})
set_tests_properties(tokenizer_parity PROPERTIES LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}"
                     SKIP_RETURN_CODE 77)
