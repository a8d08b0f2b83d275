#!/usr/bin/env python3
"""convert_pytorch_bin.py — turn a legacy `pytorch_model.bin` into `model.safetensors`.

distill reads Hugging Face model folders through model.safetensors only (a pickle can run code
when loaded; safetensors is plain data). Older checkpoints ship pytorch_model.bin (or shards listed
in pytorch_model.bin.index.json); this script converts them with PyTorch and the `safetensors`
package:

    python scripts/convert_pytorch_bin.py MODEL_DIR             # writes MODEL_DIR/model.safetensors
    python scripts/convert_pytorch_bin.py FILE.bin -o OUT.safetensors

Promises:
  - the pickle is loaded with torch.load(weights_only=True): tensors only, no arbitrary objects;
  - every tensor is written under its own name with its own dtype and shape (tensors that shared
    storage, like a tied decoder weight, are written as separate copies, as safetensors requires);
  - metadata {"format": "pt"}, which transformers expects;
  - written to a temporary file in the destination folder, read back and compared tensor by tensor,
    then renamed into place: an error leaves no partial file;
  - an existing destination is never overwritten without --force.
Exit status 0 on success, 1 on an error (message on stderr).
"""

import argparse
import json
import os
import sys
import tempfile

# torch and safetensors are imported where first needed, so argument and destination errors
# answer at once.


def die(msg):
    print(f"convert_pytorch_bin: error: {msg}", file=sys.stderr)
    sys.exit(1)


def load_bin(path):
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unpickling failure with the file name
        die(f"{path}: cannot load as a PyTorch state dict: {e}")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        die(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    for k, v in state.items():
        if not isinstance(k, str) or not torch.is_tensor(v):
            die(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
    return state


def same_bits(a, b):
    """Same dtype, shape and bytes (NaNs included, which torch.equal calls unequal)."""
    import torch
    return (a.dtype == b.dtype and a.shape == b.shape and
            torch.equal(a.flatten().view(torch.uint8), b.flatten().view(torch.uint8)))


def inputs_of(src):
    """The .bin files to read: a file, a folder's pytorch_model.bin, or its index's shards."""
    if os.path.isfile(src):
        return [src], os.path.join(os.path.dirname(os.path.abspath(src)), "model.safetensors")
    if not os.path.isdir(src):
        die(f"{src}: no such file or folder")
    out = os.path.join(src, "model.safetensors")
    single = os.path.join(src, "pytorch_model.bin")
    index = os.path.join(src, "pytorch_model.bin.index.json")
    if os.path.isfile(single):
        return [single], out
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            die(f"{index}: expected a non-empty \"weight_map\"")
        return [os.path.join(src, s) for s in sorted(set(weight_map.values()))], out
    die(f"{src}: holds neither pytorch_model.bin nor pytorch_model.bin.index.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="model folder, or a .bin file")
    ap.add_argument("-o", "--output", help="destination (default: model.safetensors beside the input)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing destination")
    args = ap.parse_args()

    files, out = inputs_of(args.src)
    out = args.output or out
    if os.path.exists(out) and not args.force:
        die(f"{out}: exists (use --force to overwrite)")
    from safetensors.torch import load_file, save_file
    state = {}
    for path in files:
        for k, v in load_bin(path).items():
            if k in state:
                die(f"{path}: tensor {k!r} also appears in an earlier shard")
            state[k] = v
    # Separate, contiguous copies: safetensors refuses tensors that share memory.
    state = {k: v.detach().contiguous().clone() for k, v in state.items()}

    folder = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=".model.safetensors.", dir=folder)
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": "pt"})
        back = load_file(tmp)
        if set(back) != set(state) or any(not same_bits(back[k], v) for k, v in state.items()):
            die(f"{tmp}: the written file does not read back equal to the input")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    n = sum(v.numel() for v in state.values())
    print(f"convert_pytorch_bin: wrote {out}: {len(state)} tensors, {n:,} values "
          f"({', '.join(sorted({str(v.dtype).replace('torch.', '') for v in state.values()}))})")


if __name__ == "__main__":
    main()
