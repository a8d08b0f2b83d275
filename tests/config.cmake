# tests/config.cmake — train/config: the YAML config of DESIGN §6 (label: unit).
#   config_bad_<rule>   one rejection rule each: tests/configs/<rule>.yaml carries the expected message
#                       ("# expect: ...") and any --set overrides ("# set: ..."); the test also checks
#                       that loading wrote nothing.
#   config_<case>       defaults, overrides, the resolved-dump round trip, the DESIGN §6 example, and
#                       each rule of config_check_models (config_models_<rule>); loss_table_keys and
#                       readme_losses walk losses/' table (keys, defaults, configs/README.md).
add_executable(test_config_bad ${CMAKE_CURRENT_LIST_DIR}/test_config_bad.c)
target_link_libraries(test_config_bad PRIVATE distill_train)
add_executable(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.c ${CMAKE_CURRENT_LIST_DIR}/test_config_models.c)
target_link_libraries(test_config PRIVATE distill_train)

set(DISTILL_CONFIG_BAD_FIXTURES
  beta_range
  precision_model_enum
  bool_wrong_type
  data_dev_not_found
  data_train_absent
  data_train_directory
  data_train_not_found
  device_unknown
  distill_only_label_losses
  distill_without_teacher
  dropout_range
  duplicate_key
  early_stopping_without_dev
  enum_typo
  epochs_zero
  eval_every_without_dev
  finetune_distill_loss
  finetune_with_teacher
  grad_accum_zero
  hard_ce_and_mse
  heads_divide_hidden
  hidden_not_multiple_of_default_heads
  int_wrong_type
  key_not_scalar
  layer_list_with_random_init
  logits_loss_regression_student
  loss_attention_layer_zero
  loss_bad_name
  loss_duplicate_name
  loss_duplicate_pair
  loss_key_not_for_type
  loss_layers_typo
  loss_missing_type
  loss_negative_weight
  loss_not_mapping
  loss_pair_malformed
  loss_type_typo
  losses_all_zero_weight
  losses_empty
  lr_not_positive
  metric_accuracy_for_regression
  metric_pearson_for_classification
  mse_classification_student
  not_utf8
  num_labels_too_many
  number_quoted
  override_bad_key
  override_bad_value
  override_bad_yaml
  override_index_into_mapping
  override_index_out_of_range
  override_into_scalar
  override_no_equals
  override_second_wins_error
  override_unknown_key
  recursive_alias
  resume_bool
  resume_path_not_found
  run_dir_is_file
  run_dir_not_empty
  run_name_slash
  section_not_mapping
  seed_negative
  student_init_typo
  teacher_folder_without_config
  teacher_init_and_path
  teacher_init_teacher_layers
  teacher_layers_duplicate
  teacher_layers_missing_layers
  teacher_layers_without_teacher
  teacher_layers_zero
  teacher_neither
  teacher_path_not_found
  teacher_random_with_path
  temperature_not_positive
  temperature_schedule_incomplete
  temperature_schedule_unknown_key
  threads_negative
  top_not_mapping
  two_documents
  unknown_key_hf_name
  unknown_key_other_section
  unknown_section
  warmup_both
  yaml_syntax
)
# several teachers (teachers:, teacher_logits, a loss's teacher)
list(APPEND DISTILL_CONFIG_BAD_FIXTURES
  teachers_and_teacher teachers_empty teachers_duplicate_name teachers_weight_with_mean
  teachers_weighted_all_zero teacher_logits_typo loss_teacher_unknown_name loss_teacher_out_of_range
  loss_teacher_on_logits)
foreach(rule ${DISTILL_CONFIG_BAD_FIXTURES})
  add_test(NAME config_bad_${rule}
           COMMAND test_config_bad ${CMAKE_CURRENT_LIST_DIR}/configs/${rule}.yaml)
  set_tests_properties(config_bad_${rule} PROPERTIES LABELS unit TIMEOUT 20)
endforeach()

set(DISTILL_CONFIG_CASES
  defaults design_example overrides roundtrip_design roundtrip_full roundtrip_finetune
  where temperature stages missing_config_file config_is_directory no_file_defaults loss_table_keys tf32
  models_ok
  models_teacher_vocab models_data_vocab models_type_vocab models_max_seq_over_file
  models_seq_over_student models_seq_over_teacher models_attention_heads models_projection_none
  models_pair_student_layer models_pair_teacher_layer models_logits_no_classifier
  models_logits_label_count models_hard_ce_no_labels models_hard_ce_regression_labels
  models_mse_class_labels models_too_many_classes
  models_metric_dev_unlabelled models_metric_regression models_world_size models_bf16_cpu models_bf16_cuda models_bf16_teacher_cuda
  models_student_shape_mismatch models_teacher_shape_mismatch models_teacher_layers_too_deep
)
add_test(NAME config_readme_example COMMAND test_config readme_example ${CMAKE_SOURCE_DIR}/configs/README.md)
set_tests_properties(config_readme_example PROPERTIES LABELS unit TIMEOUT 20)
add_test(NAME config_readme_losses COMMAND test_config readme_losses ${CMAKE_SOURCE_DIR}/configs/README.md)
set_tests_properties(config_readme_losses PROPERTIES LABELS unit TIMEOUT 20)
# every shipped config parses, and its resolved dump parses to the same dump
file(GLOB shipped_configs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/configs/*.yaml)
foreach(shipped_path ${shipped_configs})
  get_filename_component(shipped ${shipped_path} NAME_WE)
  add_test(NAME config_shipped_${shipped} COMMAND test_config shipped ${CMAKE_SOURCE_DIR}/configs/${shipped}.yaml)
  set_tests_properties(config_shipped_${shipped} PROPERTIES LABELS unit TIMEOUT 20)
endforeach()
list(APPEND DISTILL_CONFIG_CASES roundtrip_teachers models_teachers_vocab models_teachers_labels
  models_teachers_loss_heads models_teachers_ok models_teachers_bf16_cuda)
foreach(case ${DISTILL_CONFIG_CASES})
  add_test(NAME config_${case} COMMAND test_config ${case})
  set_tests_properties(config_${case} PROPERTIES LABELS unit TIMEOUT 20)
endforeach()
