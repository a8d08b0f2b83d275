# tests/fuzz/flags.cmake — compile flags of the fuzzing build (-DDISTILL_FUZZ=ON), included from
# the top CMakeLists.txt before any target, so that every library the harnesses link (engine, io,
# data, checkpoints, train) carries libFuzzer's coverage instrumentation and the sanitizers.
#
#   -fsanitize=fuzzer-no-link      coverage counters for libFuzzer in the libraries (the harness
#                                  executables link the fuzzer's main with -fsanitize=fuzzer);
#   -fsanitize=address,undefined   ASan (with LeakSanitizer) and UBSan; UBSan does not recover, so
#                                  any report is a crash libFuzzer saves and stops on.
# Needs clang (libFuzzer ships with it: Debian's clang + libclang-rt-14-dev, and libomp-dev for
# clang's OpenMP). CUDA is refused here: device code is not instrumented and it doubles the build.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "DISTILL_FUZZ=ON needs clang (libFuzzer): configure with CC=clang, found "
                      "${CMAKE_C_COMPILER_ID} (${CMAKE_C_COMPILER})")
endif()
if(DISTILL_CUDA STREQUAL "ON")
  message(FATAL_ERROR "DISTILL_FUZZ=ON builds without CUDA: pass -DDISTILL_CUDA=OFF")
endif()
set(DISTILL_CUDA OFF CACHE STRING "Build the CUDA backend: ON, OFF or AUTO" FORCE)
include(CheckCSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer,address,undefined")
check_c_source_compiles("
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }"
  DISTILL_HAVE_LIBFUZZER)
unset(CMAKE_REQUIRED_FLAGS)
if(NOT DISTILL_HAVE_LIBFUZZER)
  message(FATAL_ERROR "DISTILL_FUZZ=ON: clang cannot link -fsanitize=fuzzer,address,undefined "
                      "(Debian: apt-get install libclang-rt-14-dev)")
endif()
add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=fuzzer-no-link,address,undefined>
                    $<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize-recover=all>
                    $<$<COMPILE_LANGUAGE:C,CXX>:-fno-omit-frame-pointer>
                    $<$<COMPILE_LANGUAGE:C,CXX>:-gline-tables-only>
                    $<$<COMPILE_LANGUAGE:C,CXX>:-O1>)
add_link_options(-fsanitize=address,undefined)
