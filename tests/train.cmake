# tests/train.cmake — the Trainer's optimizer step (train/trainer.h) against PyTorch, and gradient
# accumulation.
#   train_step_parity (parity): tests/test_train_step.py runs test_train_step trace for a linear
#       schedule with warmup steps and active clipping, a cosine schedule with a warmup ratio and no
#       clipping, and a constant schedule with clipping that does not bite, and replays each step
#       with torch.optim.lr_scheduler.LambdaLR (Hugging Face's get_*_schedule_with_warmup
#       lambdas), torch.nn.utils.clip_grad_norm_ and torch.optim.AdamW on the C gradients, in
#       float64: learning rates, warmup step counts, gradient norms and every parameter after every
#       step. A few seconds.
#   train_grad_accum (unit): batch 8 x grad_accum 1 = batch 4 x grad_accum 2 within fp32 reduction
#       order (loss, gradient norm, every gradient). Well under a second.
add_executable(test_train_step test_train_step.c)
target_link_libraries(test_train_step PRIVATE distill_train)

add_test(NAME train_step_parity
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_train_step.py
                 --tool $<TARGET_FILE:test_train_step>)
set_tests_properties(train_step_parity PROPERTIES LABELS parity ENVIRONMENT "${DISTILL_TEST_PY_ENV}"
                     TIMEOUT 120 SKIP_RETURN_CODE 77)

add_test(NAME train_grad_accum COMMAND test_train_step accum)
set_tests_properties(train_grad_accum PROPERTIES LABELS unit TIMEOUT 60)

# train_step_readbacks (unit): a training step waits on the device once, at its end (the loss, its
# terms and the gradient norm's partial sums in one readback): backend_readbacks() counted around
# five CPU steps (grad_accum 2; logits_kd, hidden_mse, attention_mse, hard_ce; one step skipped by
# the DISTILL_TEST_NAN hook) must grow by exactly 1 per step. Well under a second.
add_test(NAME train_step_readbacks COMMAND test_train_step readbacks)
set_tests_properties(train_step_readbacks PROPERTIES LABELS unit TIMEOUT 60)
