# tests/readme.cmake — the README's commands, run (tests/readme_test.py): every ```sh and ```console
# block of README.md in order, in a scratch copy of the repository, with the output each console
# block shows compared (numbers may differ; words and paths may not). Blocks that need a GPU, mpirun
# or the whole test suite are marked in README.md and reported as SKIP in the output; the main job
# runs with 20 teacher and 20 student steps (DISTILL_TEACHER_STEPS/DISTILL_STUDENT_STEPS), the quick
# start's trainings with --set train.max_steps=20. About 5 minutes on 2 idle cores (it builds its
# own build/ in the scratch copy, as the README says); the timeout leaves room for a loaded machine.
# readme_markers only parses the README and its markers (an unknown marker fails it): a second.
add_test(NAME readme_markers
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/readme_test.py --list)
set_tests_properties(readme_markers PROPERTIES LABELS unit ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 30)
add_test(NAME readme
         COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/readme_test.py)
set_tests_properties(readme PROPERTIES LABELS e2e ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 1800
                     PROCESSORS 2)
