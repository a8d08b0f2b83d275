# tests/install.cmake — scripts/install-deps.sh on a machine polluted with other copies of its Python
# packages (Debian's python3-onnx 1.12, a pip numpy 2 in /usr/local). It changes the machine, so it
# runs only as root under CI=true (.ci/run) or DISTILL_TEST_POLLUTE=1, and reports "skipped"
# (exit 77) elsewhere; RUN_SERIAL: while the pip numpy sits in /usr/local, /usr/bin/python3's torch
# and h5py are broken for anything else that uses them. Label install (not in unit|parity: the ASan
# stage does not repeat it).
add_test(NAME install_polluted
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_install_polluted.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(install_polluted PROPERTIES LABELS install RUN_SERIAL TRUE SKIP_RETURN_CODE 77
  TIMEOUT 600)
