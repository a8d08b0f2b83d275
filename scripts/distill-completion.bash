# scripts/distill-completion.bash — bash completion for `distill`.
#
#   source scripts/distill-completion.bash        # this shell
#   cp scripts/distill-completion.bash /etc/bash_completion.d/distill   # every shell (as root)
#
# Completes the commands, each command's options (the lists below follow train/help.c), option
# values with a fixed set (--output, --pooling, --device, --format, --resume), files for paths and
# folders for model folders and --hf. Needs bash-completion's _filedir when it is loaded, and
# falls back to compgen -f without it.

_distill_files() { # $1: -d for folders only, or a glob such as '@(yaml|yml)'
  if declare -F _filedir >/dev/null; then
    _filedir "$@"
  elif [[ "$1" == -d ]]; then
    mapfile -t COMPREPLY < <(compgen -d -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  fi
}

_distill() {
  local cur prev cmd i
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD - 1]}"
  COMPREPLY=()
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      train | prepare | eval | export | predict | info | bench | cache | help) cmd="${COMP_WORDS[i]}"; break ;;
      --config | --set | --resume) cmd=train; break ;;
    esac
  done

  # values of options
  case "$prev" in
    --config) _distill_files '@(yaml|yml)'; return ;;
    --resume) mapfile -t COMPREPLY < <(compgen -W "auto none" -- "$cur"); [[ ${#COMPREPLY[@]} -eq 0 ]] && _distill_files '@(h5)'; return ;;
    --output)
      if [[ "$cmd" == predict ]]; then
        mapfile -t COMPREPLY < <(compgen -W "logits probs label embedding" -- "$cur")
      else
        _distill_files '@(h5)'
      fi
      return ;;
    --precision) mapfile -t COMPREPLY < <(compgen -W "fp32 bf16" -- "$cur"); return ;;
    --teacher) _distill_files; return ;;
    --pooling) mapfile -t COMPREPLY < <(compgen -W "cls mean" -- "$cur"); return ;;
    --device) mapfile -t COMPREPLY < <(compgen -W "cpu cuda auto cuda:0" -- "$cur"); return ;;
    --format) mapfile -t COMPREPLY < <(compgen -W "tsv csv jsonl" -- "$cur"); return ;;
    --hf) _distill_files -d; return ;;
    --model) _distill_files; return ;;
    --data | --checkpoint) _distill_files '@(h5)'; return ;;
    --vocab | --input | --onnx | --out) _distill_files; return ;;
    --set | --max-seq | --batch-size | --threads | --steps | --seq | --latency-rows | --random | \
      --text | --text-pair | --label | --labels | --opset) return ;;
  esac

  local opts
  case "$cmd" in
    "") opts="train prepare eval export predict info bench cache help --config --set --resume --version --help" ;;
    train) opts="--config --set --resume --help" ;;
    prepare) opts="--vocab --input --output --max-seq --format --text --text-pair --label --no-label --labels --regression --no-lower-case --skip-bad-rows --help" ;;
    eval) opts="--model --random --data --max-seq --allow-vocab-mismatch --batch-size --latency-rows --no-latency --threads --device --json --help" ;;
    export) opts="--checkpoint --model --hf --onnx --fp16 --opset --device --help" ;;
    predict) opts="--model --text --text-pair --input --format --output --pooling --normalize --out --batch-size --max-seq --threads --device --help" ;;
    info)
      if [[ "$cur" != -* ]]; then _distill_files; return; fi
      opts="--tensors --help" ;;
    bench) opts="--config --set --steps --seq --from-data --json --help" ;;
    cache) opts="--teacher --data --batch-size --precision --threads --device --help" ;;
    help) opts="train prepare eval export predict info bench cache" ;;
  esac
  mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
}
complete -F _distill distill
