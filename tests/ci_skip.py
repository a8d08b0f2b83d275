"""ci_skip.py — what a parity test does when its reference is missing (a Python package such as
torch or tokenizers, or the shared data): on a developer's machine it is skipped (exit 77, CTest's
SKIP_RETURN_CODE) with the reason; under CI (the environment variable CI is "true" or "1", as
.ci/run and hosted CI services set it) it fails (exit 1) with the reason, so a CI machine that lost
a reference can never report the test as passed or skipped.

Only for missing references. A missing GPU is not a reference: GPU tests keep their own rule
(skip without a device unless DISTILL_EXPECT_GPU=1), because CI machines have no GPU.

Use:  from ci_skip import missing_reference
      missing_reference("the Python package `tokenizers` is not installed")   # never returns
"""
import os
import sys


def under_ci(env=None):
    """True when the CI variable says this is a CI run."""
    v = (env if env is not None else os.environ).get("CI", "")
    return v.strip().lower() in ("true", "1", "yes")


def missing_reference(why):
    """Skip (77) on a developer's machine, fail (1) under CI=true; prints why either way."""
    if under_ci():
        print(f"FAIL: {why} (CI={os.environ.get('CI')}: a missing reference fails the test under CI; "
              f"install it with scripts/install-deps.sh)", flush=True)
        sys.exit(1)
    print(f"SKIP: {why} (under CI=true this fails)", flush=True)
    sys.exit(77)
