#!/usr/bin/env bash
# tests/test_install_polluted.sh — scripts/install-deps.sh on a machine that already has other
# copies of the Python packages distill uses (issue 11, item 7):
#   - Debian's python3-onnx 1.12 (and python3-protobuf 3.21) in /usr/lib/python3/dist-packages:
#     pip used to keep that onnx, and onnxruntime.quantization then failed on the missing ml_dtypes;
#   - a newer numpy (2.x) installed by pip into the default Python (/usr/local/lib/python3.X/
#     dist-packages, `pip install --break-system-packages`): a --system-site-packages venv sees it
#     before Debian's numpy, and Debian's h5py and torch, built against numpy 1.24, break.
# The test first proves the pollution is real (a plain --system-site-packages venv cannot import
# h5py with it), then installs into a fresh venv and into such an old-style venv (converted in
# place), and checks each: the health check passes, onnx and friends are at least the minimum
# versions and not Debian's 1.12, numpy is Debian's, h5py and torch work with it,
# onnxruntime.quantization quantizes a small model, nothing from /usr/local is on the path; a
# second install-deps run changes nothing.
#
# It changes the machine (apt-get install python3-onnx; pip install numpy into /usr/local, removed
# again at the end, as is python3-onnx when this test installed it), so it runs only as root and
# only when CI is true/1/yes (as .ci/run sets) or DISTILL_TEST_POLLUTE=1; otherwise it exits 77,
# which CTest reports as skipped (under CI, not being root fails). It needs the network (PyPI,
# the Debian mirror), as the install stage does.
#
# Usage: bash tests/test_install_polluted.sh REPO_ROOT
set -uo pipefail

ROOT="${1:?usage: test_install_polluted.sh REPO_ROOT}"
SKIP=77
ci="${CI:-}"
ci="${ci,,}"
[[ "$ci" == true || "$ci" == 1 || "$ci" == yes ]] && under_ci=1 || under_ci=0
if ((!under_ci)) && [[ "${DISTILL_TEST_POLLUTE:-}" != 1 ]]; then
  echo "skipped: this test installs python3-onnx and a pip numpy into /usr/local (then removes them);"
  echo "         it runs under CI=true (bash .ci/run) or with DISTILL_TEST_POLLUTE=1"
  exit "$SKIP"
fi
if [[ $(id -u) -ne 0 ]]; then
  ((under_ci)) && { echo "FAIL: needs root (apt-get install, pip install into /usr/local); CI runs as root"; exit 1; }
  echo "skipped: needs root (apt-get install, pip install into /usr/local)"
  exit "$SKIP"
fi

fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

WORK="$(mktemp -d /tmp/distill-install-polluted.XXXXXX)"
PYVER="$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
LOCAL_SITE="/usr/local/lib/python$PYVER/dist-packages"
we_installed_debs=() # the Debian packages this test added (python3-onnx and what it pulled in)
we_installed_numpy=0
cleanup() {
  if ((we_installed_numpy)); then
    /usr/bin/python3 -m pip uninstall -y -q --break-system-packages numpy >/dev/null 2>&1 ||
      echo "warning: could not remove the pip numpy from $LOCAL_SITE"
  fi
  if ((${#we_installed_debs[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "${we_installed_debs[@]}" >/dev/null 2>&1 ||
      echo "warning: could not remove ${we_installed_debs[*]}"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------------------------ pollute
installed_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if ! installed_deb python3-onnx; then
  export DEBIAN_FRONTEND=noninteractive
  apt-cache policy python3-onnx 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get update -q >/dev/null
  new_debs=()
  for p in python3-onnx python3-protobuf; do installed_deb "$p" || new_debs+=("$p"); done
  apt-get install -y -qq --no-install-recommends python3-onnx >/dev/null || { bad "apt-get install python3-onnx"; exit 1; }
  we_installed_debs=("${new_debs[@]}")
fi
ok "Debian's python3-onnx $(dpkg-query -W -f='${Version}' python3-onnx) is installed"
if [[ ! -d "$LOCAL_SITE/numpy" ]]; then
  # --ignore-installed: install beside Debian's numpy, never uninstalling it
  /usr/bin/python3 -m pip install -q --break-system-packages --ignore-installed --no-warn-conflicts \
    --disable-pip-version-check 'numpy>=2' 2>&1 | grep -v "Running pip as the 'root' user" ||
    true
  [[ -d "$LOCAL_SITE/numpy" ]] || { bad "pip install numpy into $LOCAL_SITE"; exit 1; }
  we_installed_numpy=1
fi
ok "numpy $(PYTHONPATH="$LOCAL_SITE" /usr/bin/python3 -c 'import numpy; print(numpy.__version__)') is in $LOCAL_SITE"

# The pollution is real: a --system-site-packages venv takes that numpy, and Debian's h5py breaks.
/usr/bin/python3 -m venv --system-site-packages "$WORK/old"
if "$WORK/old/bin/python" -c 'import h5py' >/dev/null 2>&1; then
  bad "a --system-site-packages venv still imports Debian's h5py with numpy 2 in $LOCAL_SITE: the pollution did not take"
else
  ok "a --system-site-packages venv cannot import Debian's h5py now (numpy from $LOCAL_SITE)"
fi

# ------------------------------------------------------------------ install
# A scratch root holding the two scripts, so that the install's model link goes to $WORK/.cache,
# not to the repository's .cache (which names the repository's .venv).
mkdir -p "$WORK/root/scripts"
cp "$ROOT/scripts/install-deps.sh" "$ROOT/scripts/real_weights.py" "$WORK/root/scripts/"

check_venv() { # check_venv VENV
  local v="$1" t0 out
  "$v/bin/python" - "$LOCAL_SITE" <<'EOF' && ok "$v: imports, versions and origins as required" || bad "$v: see above"
import logging, os, subprocess, sys, tempfile
logging.disable(logging.WARNING)  # quantize_dynamic advises pre-processing: not what is tested
local_site = sys.argv[1]
fails = []
def need(cond, what):
    print(("  ok: " if cond else "  FAIL: ") + what)
    if not cond:
        fails.append(what)
def release(v):
    import re
    return tuple(int(x) for x in re.match(r"\d+(\.\d+)*", v).group(0).split("."))

need(not any(p.startswith("/usr/local/") for p in sys.path), "no /usr/local folder on sys.path")
import numpy, h5py, torch
deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-numpy"], capture_output=True, text=True).stdout
need(numpy.__file__.startswith("/usr/lib/python3/dist-packages/"), f"numpy from Debian's folder ({numpy.__file__})")
need(numpy.__version__ in deb, f"numpy {numpy.__version__} is Debian's ({deb})")
with tempfile.TemporaryDirectory() as d:
    with h5py.File(os.path.join(d, "x.h5"), "w") as f:
        f["x"] = numpy.arange(6, dtype=numpy.float32)
    with h5py.File(os.path.join(d, "x.h5"), "r") as f:
        back = f["x"][...]
t = torch.from_numpy(back) * 2
need(t.numpy().tolist() == [0, 2, 4, 6, 8, 10], "h5py and torch work with that numpy")
import onnx, onnxruntime, ml_dtypes
need(not onnx.__file__.startswith("/usr/lib/"), f"onnx {onnx.__version__} is the venv's ({onnx.__file__}), not Debian's")
need(release(onnx.__version__) >= (1, 16), f"onnx {onnx.__version__} >= 1.16")
need(release(onnxruntime.__version__) >= (1, 18), f"onnxruntime {onnxruntime.__version__} >= 1.18")
from onnx import TensorProto, helper
from onnxruntime.quantization import QuantType, quantize_dynamic
w = numpy.random.default_rng(0).standard_normal((16, 8)).astype(numpy.float32)
g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                      [onnx.numpy_helper.from_array(w, "w")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
with tempfile.TemporaryDirectory() as d:
    src, dst = os.path.join(d, "m.onnx"), os.path.join(d, "q.onnx")
    onnx.save(m, src)
    quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    q = onnx.load(dst)
    x = numpy.ones((1, 16), numpy.float32)
    y = onnxruntime.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ref = x @ w
    # x (all ones) is exact in uint8; the INT8 weights (symmetric, per tensor: scale max|w|/127)
    # are each off by <= scale/2, so each of the 16-term sums by <= 8 * scale; bound: twice that.
    bound = 16 * numpy.abs(w).max() / 127
    int8 = [t.name for t in q.graph.initializer if t.data_type == TensorProto.INT8]
    need(bool(int8) and float(numpy.abs(y - ref).max()) <= bound,
         f"onnxruntime.quantization.quantize_dynamic ran: INT8 weights {int8}, output within {bound:.3f} of float")
sys.exit(1 if fails else 0)
EOF
}

for v in "$WORK/fresh" "$WORK/old"; do
  t0=$(date +%s)
  if out="$(DISTILL_VENV="$v" bash "$WORK/root/scripts/install-deps.sh" 2>&1)"; then
    ok "install-deps into $v ($(($(date +%s) - t0)) s)"
  else
    printf '%s\n' "$out" | sed 's/^/  | /'
    bad "install-deps into $v"
    continue
  fi
  [[ "$v" != "$WORK/old" ]] || grep -q "seeing Debian's dist-packages only" <<<"$out" ||
    bad "the --system-site-packages venv was not converted"
  check_venv "$v"
  out="$(DISTILL_VENV="$v" bash "$WORK/root/scripts/install-deps.sh" 2>&1)"
  if grep -q "all packages present" <<<"$out" && ! grep -q "pip install" <<<"$out"; then
    ok "second install-deps run: nothing to do"
  else
    printf '%s\n' "$out" | sed 's/^/  | /'
    bad "second install-deps run into $v was not a no-op"
  fi
done

if ((fails)); then
  echo "test_install_polluted: $fails check(s) failed"
  exit 1
fi
echo "test_install_polluted: all checks passed"
