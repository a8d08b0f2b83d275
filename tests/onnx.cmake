# tests/onnx.cmake — ONNX export (checkpoints/onnx_export.h) against ONNX Runtime, its transformer
# optimizer and INT8 quantization (scripts/onnx_check.py, scripts/quantize.py).

# The C half: export a model, and run the engine's own forward on the same inputs.
add_executable(test_onnx_tool test_onnx_tool.c)
target_include_directories(test_onnx_tool PRIVATE ${CBLAS_INCLUDE_DIR})
target_link_libraries(test_onnx_tool PRIVATE distill_checkpoints OpenMP::OpenMP_C ${BLAS_LIBRARIES})
