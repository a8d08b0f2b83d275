#!/usr/bin/env bash
# tests/test_completion.sh — scripts/distill-completion.bash completes what `distill` takes:
# commands, each command's options (every option that `distill help CMD` defines is offered),
# and the fixed option values.
#   test_completion.sh DISTILL COMPLETION_FILE
set -u
distill="$1"
# shellcheck source=/dev/null
source "$2"
fail=0
complete_words() { # the words typed so far, the last one being completed
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _distill
  printf '%s\n' "${COMPREPLY[@]}"
}
expect() { # WANT WORDS...: WANT is among the completions
  local want="$1"
  shift
  if ! complete_words "$@" | grep -qx -- "$want"; then
    echo "FAIL: '$*' does not complete to '$want' (got: $(complete_words "$@" | tr '\n' ' '))"
    fail=1
  fi
}
for c in train prepare eval export predict info bench cache help; do expect "$c" distill ""; done
expect --version distill --
expect --config distill --c
for cmd in train prepare eval export predict info bench cache; do
  # every option defined in the command's help ("  --opt ...")
  for opt in $("$distill" help "$cmd" | sed -n 's/^  \(--[a-z0-9-]*\).*/\1/p' | sort -u); do
    expect "$opt" distill "$cmd" --
  done
done
expect embedding distill predict --model m --output e
expect mean distill predict --pooling m
expect auto distill --config x.yaml --resume a
expect jsonl distill prepare --format j
expect bf16 distill cache --precision b
expect cuda distill eval --device c
expect --max-seq distill eval --model m --max
[[ $fail == 0 ]] && echo "test_completion: all checks passed"
exit $fail
