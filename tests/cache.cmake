# tests/cache.cmake — the teacher-logit cache (tests/test_cache.py): `distill cache` + teacher.cache.
# same: a logits-only run from the cache = the run with the live teacher (losses and final weights
# within a stated tolerance), no teacher forward counted; refuse: caches of another teacher,
# vocabulary or max_seq, and one without identity, are refused and nothing is written. ~10 s each.
foreach(case same refuse)
  add_test(NAME cache_${case}
           COMMAND ${DISTILL_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_cache.py ${case}
                   --distill $<TARGET_FILE:distill>)
  set_tests_properties(cache_${case} PROPERTIES LABELS e2e ENVIRONMENT "${DISTILL_TEST_PY_ENV}" TIMEOUT 180)
endforeach()
