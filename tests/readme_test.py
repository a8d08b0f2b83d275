#!/usr/bin/env python3
"""readme_test.py — run the README's commands, in order, in a scratch copy of the repository, and
compare their output with what the README shows.

    readme_test.py [--readme FILE] [--repo DIR] [--scratch DIR] [--keep] [--list]

Which blocks run
  ```sh / ```bash / ```shell   every command in the block runs (comment-only and blank lines are
                               not commands; a line ending in a backslash continues on the next).
  ```console                   lines starting with "$ " are commands; the lines after a command, up
                               to the next "$ " line, are its expected output.
  any other fence              not run (an illustration: a config, a table, an output sample),
                               unless the marker "output" says it is the previous block's output.

Markers: an HTML comment on the line(s) just before the opening fence (blank lines may separate
them), invisible on GitHub. Several directives may share one comment, separated by ";":

  <!-- readme-test: skip (REASON) -->              the block is not run; printed as SKIP with REASON.
                                                   Use for blocks that need a GPU, mpirun/srun, or
                                                   many minutes: skip (needs a GPU), skip (mpirun).
  <!-- readme-test: skip-line TEXT (REASON) -->    commands containing TEXT are not run (printed).
  <!-- readme-test: env NAME=VALUE ... -->         environment for the block's commands (for
                                                   scripts that read one, e.g. the demo's
                                                   DISTILL_STUDENT_STEPS: a shorter schedule).
  <!-- readme-test: config-args ARGS -->           ARGS appended to every `distill --config`
                                                   command of the block (before a trailing
                                                   comment), e.g. --set train.max_steps=20: the
                                                   last --set of a key wins.
  <!-- readme-test: replace OLD => NEW -->         OLD replaced by NEW in the block's commands and
                                                   expected output (names that depend on a
                                                   shortened run's step count: ckpt-400.h5).
  <!-- readme-test: output -->                     on a non-command fence: the expected output of
                                                   the previous command block (all its commands).

How output is compared (tolerant, and stated): each expected line, reduced to its skeleton, must
appear in the command's output (stdout and stderr together), in the README's order; other output
lines may come between. The skeleton replaces every number (optional sign, digits with or without
thousands separators, decimals, exponent) by "#" and collapses runs of white space, so values, timings and counts may differ but
words, names, paths and the layout of a line may not. An expected line ending in "..." matches any
output line whose skeleton starts with the rest; a line that is only "..." matches nothing and is
ignored. Blank expected lines are ignored.

The scratch copy: the repository's files (git ls-files: tracked and untracked-but-not-ignored, as
they are in the working tree) copied to SCRATCH/main; .venv linked to the repository's (made by
scripts/install-deps.sh); .cache/models links copied; SCRATCH/shared/data the shared data folder
(DISTILL_SHARED_DATA, default REPO/../shared/data), every file linked except sst2/dev.tsv, which is
cut to its first DEV_ROWS rows (DISTILL_README_DEV_ROWS, default 500) so that evaluations on the
dev split stay short. The README's commands build their own build/ there (the demo and the quick
start do). A command that fails stops the test; an output mismatch is reported and the test goes
on; the exit status is 1 when anything failed, 0 otherwise.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

MARK = re.compile(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
SHELL_LANGS = {"sh", "bash", "shell"}
NUM = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
DISTILL_CONFIG = re.compile(r"\bdistill\b.*\s--config\b")
COMMAND_TIMEOUT_S = 900  # one README command; ctest's TIMEOUT bounds the whole test


def skeleton(line):
    return " ".join(NUM.sub("#", line).split())


class Block:
    def __init__(self, lang, line, body, directives):
        self.lang, self.line, self.body = lang, line, body
        self.skip = None        # reason, or None
        self.skip_lines = []    # (text, reason)
        self.env = {}
        self.config_args = ""
        self.replace = []       # (old, new)
        self.is_output = False
        for d in directives:
            self.directive(d)

    def directive(self, d):
        word, _, rest = d.partition(" ")
        rest = rest.strip()
        if word == "skip":
            self.skip = rest.strip("()") or "no reason given"
        elif word == "skip-line":
            m = re.match(r"(.*?)\s*\((.*)\)\s*$", rest)
            self.skip_lines.append((m.group(1), m.group(2)) if m else (rest, "no reason given"))
        elif word == "env":
            for kv in rest.split():
                k, eq, v = kv.partition("=")
                if not eq:
                    die("README line %d: env wants NAME=VALUE, found %r" % (self.line, kv))
                self.env[k] = v
        elif word == "config-args":
            self.config_args = rest
        elif word == "replace":
            old, arrow, new = rest.partition("=>")
            if not arrow:
                die("README line %d: replace wants OLD => NEW, found %r" % (self.line, rest))
            self.replace.append((old.strip(), new.strip()))
        elif word == "output":
            self.is_output = True
        else:
            die("README line %d: unknown readme-test directive %r" % (self.line, d))

    def runs(self):
        return self.lang in SHELL_LANGS or self.lang == "console"

    def apply_replace(self, text):
        for old, new in self.replace:
            text = text.replace(old, new)
        return text

    def commands(self):
        """[(command, [expected lines])] of a command block, with the markers' changes made."""
        out = []
        lines = self.body
        i = 0
        while i < len(lines):
            ln = lines[i]
            if self.lang == "console":
                if not ln.startswith("$ "):
                    i += 1  # output before any command: not compared
                    continue
                cmd = [ln[2:]]
            else:
                if not ln.strip() or ln.lstrip().startswith("#"):
                    i += 1
                    continue
                cmd = [ln]
            while cmd[-1].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd.append(lines[i])
            i += 1
            expected = []
            if self.lang == "console":
                while i < len(lines) and not lines[i].startswith("$ "):
                    expected.append(self.apply_replace(lines[i]))
                    i += 1
            out.append((self.apply_replace("\n".join(cmd)), expected))
        return out


def die(msg):
    sys.stderr.write("readme_test.py: error: %s\n" % msg)
    sys.exit(2)


def parse(readme):
    with open(readme, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, pending, i = [], [], 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if m:
            pending += [d.strip() for d in split_directives(m.group(1)) if d.strip()]
            i += 1
            continue
        f = FENCE.match(lines[i])
        if f:
            indent, fence, lang = f.group(1), f.group(2), f.group(3)
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            blocks.append(Block(lang, start, body, pending))
            pending = []
            i += 1
            continue
        if lines[i].strip():
            if pending:
                die("README line %d: readme-test marker not followed by a fenced block" % (i + 1))
        i += 1
    return blocks


def split_directives(text):
    """Directives separated by ';' outside parentheses (a reason may hold a ';')."""
    parts, depth, cur = [], 0, ""
    for c in text:
        depth += (c == "(") - (c == ")")
        if c == ";" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    return parts + [cur]


def strip_comment(cmd):
    """(command, trailing comment) — the comment starts at a '#' after white space, outside quotes."""
    q = None
    for k, c in enumerate(cmd):
        if q:
            if c == q:
                q = None
        elif c in "'\"":
            q = c
        elif c == "#" and (k == 0 or cmd[k - 1] in " \t"):
            return cmd[:k].rstrip(), cmd[k:]
    return cmd, ""


def compare(expected, output):
    """Missing expected lines (README text), in the tolerant sense of the module comment."""
    out = [skeleton(l) for l in output.split("\n")]
    missing, j = [], 0
    for e in expected:
        s = e.strip()
        if not s or s == "...":
            continue
        prefix = s.endswith("...")
        want = skeleton(s[:-3] if prefix else s)
        k = j
        while k < len(out) and not (out[k].startswith(want) if prefix else out[k] == want):
            k += 1
        if k == len(out):
            missing.append(e)
        else:
            j = k + 1
    return missing


def copy_repo(repo, dst):
    if os.path.isdir(os.path.join(repo, ".git")) or os.path.isfile(os.path.join(repo, ".git")):
        names = subprocess.run(["git", "-C", repo, "ls-files", "-z", "--cached", "--others",
                                "--exclude-standard"], check=True, stdout=subprocess.PIPE).stdout
        files = [n for n in names.decode().split("\0") if n]
    else:
        files = []
        for d, dirs, fs in os.walk(repo):
            rel = os.path.relpath(d, repo)
            dirs[:] = [x for x in dirs if not (rel == "." and (x.startswith("build") or
                                                               x in (".git", ".venv", ".cache", "runs")))]
            files += [os.path.normpath(os.path.join(rel, x)) for x in fs]
    for n in files:
        src = os.path.join(repo, n)
        if not os.path.lexists(src):
            continue  # tracked but deleted in the working tree
        os.makedirs(os.path.dirname(os.path.join(dst, n)) or dst, exist_ok=True)
        shutil.copy2(src, os.path.join(dst, n), follow_symlinks=False)
    if os.path.isdir(os.path.join(repo, ".venv")):
        os.symlink(os.path.join(repo, ".venv"), os.path.join(dst, ".venv"))
    models = os.path.join(repo, ".cache", "models")
    if os.path.isdir(models):
        os.makedirs(os.path.join(dst, ".cache", "models"))
        for n in os.listdir(models):
            shutil.copy2(os.path.join(models, n), os.path.join(dst, ".cache", "models", n),
                         follow_symlinks=False)
    return len(files)


def make_shared(data, dst, dev_rows):
    for d, _, fs in os.walk(data):
        rel = os.path.relpath(d, data)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for n in fs:
            src, out = os.path.join(d, n), os.path.join(dst, rel, n)
            if os.path.normpath(os.path.join(rel, n)) == os.path.join("sst2", "dev.tsv"):
                with open(src, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as g:
                    for k, line in enumerate(f):
                        if k > dev_rows:  # the header row, then dev_rows rows
                            break
                        g.write(line)
            else:
                os.symlink(os.path.abspath(src), out)


def run_streamed(cmd, cwd, env):
    """Run cmd with bash (pipefail); print its output as it comes ("  | " before each line) and
    return (output, exit status or "timeout")."""
    p = subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline, lines = time.time() + COMMAND_TIMEOUT_S, []
    for raw in p.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        for part in line.split("\r"):  # a redrawn progress bar: one line per redraw
            lines.append(part)
            print("  | " + part, flush=True)
        if time.time() > deadline:
            p.kill()
            p.wait()
            return "\n".join(lines), "timeout"
    return "\n".join(lines), p.wait()


def indent(text, n=4):
    return "\n".join(" " * n + l for l in text.rstrip("\n").split("\n"))


def tail(text, n=40):
    lines = text.rstrip("\n").split("\n")
    return ("    [... %d lines]\n" % (len(lines) - n) if len(lines) > n else "") + indent("\n".join(lines[-n:]))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", default=os.path.dirname(here))
    ap.add_argument("--readme", help="default: REPO/README.md")
    ap.add_argument("--scratch", help="work folder (default: a new temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--list", action="store_true", help="print the blocks and what would run; run nothing")
    ap.add_argument("--from", dest="first", type=int, default=1, metavar="N",
                    help="start at block N in an existing --scratch (to work on a README section; "
                         "the blocks before N are reported as not run)")
    ap.add_argument("--to", dest="last", type=int, default=0, metavar="N", help="stop after block N")
    a = ap.parse_args()
    repo = os.path.abspath(a.repo)
    readme = os.path.abspath(a.readme or os.path.join(repo, "README.md"))
    blocks = parse(readme)
    rel = os.path.relpath(readme, repo)

    if a.list:
        for n, b in enumerate(blocks, 1):
            kind = ("skip (%s)" % b.skip if b.skip else "run") if b.runs() else \
                ("output of the previous block" if b.is_output else "not run")
            print("block %d, %s:%d, ```%s: %s" % (n, rel, b.line, b.lang, kind))
            if b.runs() and not b.skip:
                for cmd, exp in b.commands():
                    print(indent("$ " + cmd) + ("  [%d expected lines]" % len(exp) if exp else ""))
        return 0

    data = os.environ.get("DISTILL_SHARED_DATA") or os.path.join(repo, "..", "shared", "data")
    if not os.path.isdir(data):
        die("shared data folder %s not found (DISTILL_SHARED_DATA)" % data)
    dev_rows = int(os.environ.get("DISTILL_README_DEV_ROWS", "500"))
    scratch = os.path.abspath(a.scratch) if a.scratch else tempfile.mkdtemp(prefix="distill-readme-")
    work = os.path.join(scratch, "main")
    t0 = time.time()
    if a.first > 1:
        if not os.path.isdir(work):
            die("--from %d needs the --scratch folder of an earlier run" % a.first)
        n_files = 0  # the files of that run are used as they are
    else:
        if os.path.exists(work):
            die("%s exists already; give an empty --scratch" % work)
        os.makedirs(work)
        n_files = copy_repo(repo, work)
        make_shared(os.path.abspath(data), os.path.join(scratch, "shared", "data"), dev_rows)
    print("readme_test: %s, %d blocks; scratch copy %s (%d files), ../shared/data = %s with "
          "sst2/dev.tsv cut to %d rows" % (rel, len(blocks), work, n_files, data, dev_rows), flush=True)

    failures, skipped, n_cmds, last_output = [], [], 0, None
    stop = False
    for n, b in enumerate(blocks, 1):
        where = "block %d (%s:%d, ```%s)" % (n, rel, b.line, b.lang)
        if n < a.first or (a.last and n > a.last):
            if b.runs() or b.is_output:
                skipped.append("%s: not run (--from/--to)" % where)
            continue
        if stop and (b.runs() or b.is_output):
            skipped.append("%s: not run after an earlier failure" % where)
            continue
        if b.is_output and not b.runs():
            if last_output is None:
                failures.append("%s: marked output, but no command block ran before it" % where)
                print("FAIL %s: output of no block" % where)
                continue
            missing = compare([b.apply_replace(l) for l in b.body], last_output)
            if missing:
                failures.append("%s: output differs" % where)
                print("FAIL %s: expected output lines not found (in order, as skeletons):\n%s\n"
                      "  the previous block's output:\n%s" % (where, indent("\n".join(missing)),
                                                              tail(last_output, 60)))
            else:
                print("ok   %s: output of the previous block matches" % where)
            continue
        if not b.runs():
            continue
        if b.skip:
            print("SKIP %s: %s" % (where, b.skip))
            for cmd, _ in b.commands():
                print(indent("$ " + cmd, 6))
            skipped.append("%s: %s" % (where, b.skip))
            continue
        env = dict(os.environ, **b.env)
        env.pop("DISTILL_README_DEV_ROWS", None)
        env["DISTILL_SHARED_DATA"] = os.path.join(scratch, "shared", "data")
        block_out = []
        print("---- %s%s" % (where, "  [env %s]" % " ".join("%s=%s" % kv for kv in b.env.items())
                                    if b.env else ""), flush=True)
        for cmd, expected in b.commands():
            reason = next((r for t, r in b.skip_lines if t in cmd), None)
            if reason is not None:
                print("SKIP   $ %s\n       (%s)" % (cmd, reason))
                skipped.append("%s: $ %s: %s" % (where, cmd.split("\n")[0], reason))
                continue
            run = cmd
            if b.config_args and DISTILL_CONFIG.search(cmd):
                body, comment = strip_comment(cmd)
                run = body + " " + b.config_args + ("  " + comment if comment else "")
            n_cmds += 1
            print("$ %s%s" % (run, ""), flush=True)
            t = time.time()
            out, rc = run_streamed(run, work, env)
            block_out.append(out)
            if rc != 0:
                print("FAIL %s: exit %s after %.1f s (its output is above)" % (where, rc, time.time() - t))
                failures.append("%s: $ %s: exit %s" % (where, cmd.split("\n")[0], rc))
                stop = True
                break
            missing = compare(expected, out)
            if missing:
                print("FAIL %s: exit 0 in %.1f s, but expected output lines not found (in order, "
                      "as skeletons; the output is above):\n%s" % (where, time.time() - t,
                                                                   indent("\n".join(missing))))
                failures.append("%s: $ %s: output differs" % (where, cmd.split("\n")[0]))
            else:
                print("  ok in %.1f s%s" % (time.time() - t, ", %d expected lines found" %
                                            sum(1 for e in expected if e.strip() and e.strip() != "...")
                                            if expected else ""), flush=True)
        last_output = "\n".join(block_out)

    print("\nreadme_test: %d commands run in %.0f s; %d skipped:" % (n_cmds, time.time() - t0, len(skipped)))
    for s in skipped:
        print("  SKIPPED " + s)
    for f in failures:
        print("  FAILED  " + f)
    if not a.keep and not a.scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print("readme_test: scratch kept in %s" % scratch)
    print("readme_test: %s" % ("FAILED (%d)" % len(failures) if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
