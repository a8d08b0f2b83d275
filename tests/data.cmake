# tests/data.cmake — tokenizer, prepare, dataset and loader tests (included by tests/CMakeLists.txt).
set(DISTILL_VOCAB "${DISTILL_SHARED_DATA}/vocab/bert-base-uncased-vocab.txt")

add_executable(test_tokenizer_unit test_tokenizer_unit.c)
target_link_libraries(test_tokenizer_unit PRIVATE distill_data)
add_test(NAME data_tokenizer_unit COMMAND test_tokenizer_unit)
set_tests_properties(data_tokenizer_unit PROPERTIES LABELS unit)

add_executable(test_tokenizer_tool test_tokenizer_tool.c)
target_link_libraries(test_tokenizer_tool PRIVATE distill_data)

add_test(NAME data_tokenizer_parity
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_parity.py
                 $<TARGET_FILE:test_tokenizer_tool> ${DISTILL_VOCAB} ${DISTILL_SHARED_DATA})
set_tests_properties(data_tokenizer_parity PROPERTIES LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}"
                     SKIP_RETURN_CODE 77)

add_executable(test_loader test_loader.c)
target_link_libraries(test_loader PRIVATE distill_data)
add_test(NAME data_loader COMMAND test_loader)
set_tests_properties(data_loader PROPERTIES LABELS unit)

add_test(NAME data_prepare
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_prepare.py
                 $<TARGET_FILE:distill> ${DISTILL_VOCAB} ${DISTILL_SHARED_DATA})
set_tests_properties(data_prepare PROPERTIES LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" SKIP_RETURN_CODE 77)
