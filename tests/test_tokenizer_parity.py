#!/usr/bin/env python3
"""test_tokenizer_parity.py — the C WordPiece tokenizer against Hugging Face's `tokenizers`.

usage: test_tokenizer_parity.py TOOL VOCAB SHARED_DATA   (TOOL = test_tokenizer_tool)

1. The reference is checked first against the known semantics of transformers' BertTokenizer (the
   cases of transformers' own tests/models/bert/test_tokenization_bert.py), so it is set up as
   BertTokenizer behaves; the C tokenizer must give the same answers.
2. Every sentence of SST-2 (train, dev, test), uncased as the vocabulary is; dev and test also
   cased and as pairs that need truncation: ids and token types identical.
3. A hard-case set (accents, CJK, emoji, control characters, long words, empty strings, special
   tokens, pairs that need truncation) under every option combination and several max_seq values.
4. Every code point of planes 0-2, plane 3's assigned block and plane 14, between two letters:
   normalised, pre-tokenised words identical, except where Hugging Face's own Unicode tables are
   stale (its category tables stop at Unicode 8); each such code point must be one where the
   reference disagrees with its own rule applied with Python's unicodedata, and there the C result
   must follow the rule (or the code point is newer than Python's Unicode version).
Exit 0 when all agree, 1 on any difference, 77 (skip) when `tokenizers` or the shared data is
missing (1 then under CI=true: tests/ci_skip.py).
"""
import os
import subprocess
import sys
import tempfile
import unicodedata

try:
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
except ImportError:
    from ci_skip import missing_reference
    missing_reference("the Python package `tokenizers` is not installed")

TOOL, VOCAB, SHARED = sys.argv[1], sys.argv[2], sys.argv[3]
if not os.path.isfile(VOCAB) or not os.path.isdir(os.path.join(SHARED, "sst2")):
    from ci_skip import missing_reference
    missing_reference(f"the shared data ({VOCAB}, {SHARED}/sst2) is not there")
failures = 0


def fail(msg):
    global failures
    failures += 1
    if failures <= 30:
        print("FAIL:", msg)


def hexs(s):
    return s.encode("utf-8", "surrogatepass").hex()


def run_tool(lines, *args, vocab=VOCAB):
    """lines: list of str or (str, str); returns the tool's output lines."""
    data = "\n".join(hexs(x) if isinstance(x, str) else hexs(x[0]) + "\t" + hexs(x[1]) for x in lines) + "\n"
    r = subprocess.run([TOOL, "--vocab", vocab, *args], input=data.encode(), capture_output=True, check=True)
    out = r.stdout.decode().split("\n")
    assert out[-1] == "" and len(out) == len(lines) + 1, "tool output has the wrong number of lines"
    return out[:-1]


def c_encode(lines, opts, max_seq, vocab=VOCAB):
    res = []
    for o in run_tool(lines, *opts, "--max-seq", str(max_seq), vocab=vocab):
        if o.startswith("ERR"):
            res.append(o)
            continue
        ids, types = o.split("\t")
        res.append(([int(x) for x in ids.split()], [int(x) for x in types.split()]))
    return res


def hf_tokenizer(lower, strip, chinese, max_seq, vocab=VOCAB):
    t = BertWordPieceTokenizer(vocab, lowercase=lower, strip_accents=strip, handle_chinese_chars=chinese,
                               clean_text=True)
    t.enable_truncation(max_length=max_seq, strategy="longest_first")
    return t


def c_opts(lower, strip, chinese):
    o = []
    if not lower:
        o.append("--no-lower-case")
    o += ["--strip-accents", {None: "-1", False: "0", True: "1"}[strip]]
    if not chinese:
        o.append("--no-chinese")
    return o


def compare(name, lines, lower=True, strip=None, chinese=True, max_seq=128, vocab=VOCAB):
    hf = hf_tokenizer(lower, strip, chinese, max_seq, vocab)
    enc = hf.encode_batch(lines)
    mine = c_encode(lines, c_opts(lower, strip, chinese), max_seq, vocab)
    bad = 0
    for x, e, m in zip(lines, enc, mine):
        if m != (e.ids, e.type_ids):
            bad += 1
            fail(f"{name} (lower={lower} strip={strip} chinese={chinese} max_seq={max_seq}) {x!r}:\n"
                 f"   hf {e.ids} {e.type_ids}\n    c {m}")
    print(f"{name}: {len(lines)} inputs, lower={lower} strip={strip} chinese={chinese} max_seq={max_seq}: "
          f"{len(lines) - bad} identical")
    return bad


# ---------------------------------------------------------------- 1. the reference's semantics
def check_reference():
    """Known answers of transformers' BertTokenizer tests; the reference and C must both give them."""
    tmp = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    tmp.write("\n".join(["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing"]) + "\n")
    tmp.close()
    toy = tmp.name
    cases = [  # (vocab, text, lower, strip, expected word pieces (None: the words only))
        (toy, "unwanted running", True, None, ["un", "##want", "##ed", "runn", "##ing"]),
        (toy, "unwantedX running", True, None, ["[UNK]", "runn", "##ing"]),
        (VOCAB, " \tHeLLo!how  \n Are yoU?  ", True, None, ["hello", "!", "how", "are", "you", "?"]),
        (VOCAB, "H\u00e9llo", True, None, ["hello"]),
    ]
    word_cases = [  # (text, lower, strip, expected words): BasicTokenizer tests
        ("ah\u535a\u63a8zz", True, None, ["ah", "\u535a", "\u63a8", "zz"]),
        (" \tHeLLo!how  \n Are yoU?  ", False, None, ["HeLLo", "!", "how", "Are", "yoU", "?"]),
        (" \tH\u00e4LLo!how  \n Are yoU?  ", True, False, ["h\u00e4llo", "!", "how", "are", "you", "?"]),
        (" \tH\u00e4LLo!how  \n Are yoU?  ", True, True, ["hallo", "!", "how", "are", "you", "?"]),
        (" \tH\u00e4LLo!how  \n Are yoU?  ", False, True, ["HaLLo", "!", "how", "Are", "yoU", "?"]),
        (" \tH\u00e4LLo!how  \n Are yoU?  ", False, False, ["H\u00e4LLo", "!", "how", "Are", "yoU", "?"]),
    ]
    for vocab, text, lower, strip, want in cases:
        hf = hf_tokenizer(lower, strip, True, 512, vocab)
        got = hf.encode(text, add_special_tokens=False).tokens
        if got != want:
            fail(f"reference: {text!r} gives {got}, BertTokenizer gives {want}")
        ids = [hf.token_to_id(w) for w in want]
        mine = run_tool([text], *c_opts(lower, strip, True), "--tokenize", vocab=vocab)[0]
        if [int(x) for x in mine.split()] != ids:
            fail(f"C: {text!r} gives {mine}, BertTokenizer gives {ids}")
    for text, lower, strip, want in word_cases:
        norm = BertNormalizer(lowercase=lower, strip_accents=strip, clean_text=True, handle_chinese_chars=True)
        got = [w for w, _ in BertPreTokenizer().pre_tokenize_str(norm.normalize_str(text))]
        if got != want:
            fail(f"reference: {text!r} gives words {got}, BasicTokenizer gives {want}")
        mine = bytes.fromhex(run_tool([text], *c_opts(lower, strip, True), "--words")[0]).decode().split()
        if mine != want:
            fail(f"C: {text!r} gives words {mine}, BasicTokenizer gives {want}")
    # Pair layout and longest-first truncation (tokenizers' rule: the shorter side keeps
    # budget // 2, the longer the rest; a side that already fits is left alone).
    hf = hf_tokenizer(True, None, True, 9, VOCAB)  # budget 9 - 3 = 6 word pieces
    e = hf.encode("a b c d e", "f g")
    if e.tokens != ["[CLS]", "a", "b", "c", "d", "[SEP]", "f", "g", "[SEP]"] or e.type_ids != [0] * 6 + [1] * 3:
        fail(f"reference pair/truncation: {e.tokens} {e.type_ids}")
    e = hf.encode("a b c d", "e f g h")
    if e.tokens != ["[CLS]", "a", "b", "c", "[SEP]", "e", "f", "g", "[SEP]"]:
        fail(f"reference pair/truncation (both long): {e.tokens}")
    os.unlink(toy)
    print("reference semantics: checked")


# ---------------------------------------------------------------- 2. SST-2
def sst2_sentences():
    rows = []
    for split in ("train", "dev", "test"):
        with open(os.path.join(SHARED, "sst2", split + ".tsv"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        assert lines[0].split("\t")[0] == "sentence"
        rows += [l.split("\t")[0] for l in lines[1:] if l]
    return rows


# ---------------------------------------------------------------- 3. hard cases
HARD = [
    "", " ", "\t\n\r ", "Hello, World!", "HÉLLO wörld café naïve Ångström façade résumé",
    "İstanbul ΣΑΣ σας ß ẞ ǅ ǈ Ω", "你好世界 中文字符测试", "日本語のテキストとカタカナ ｶﾀｶﾅ", "한국어 텍스트 입니다",
    "I ❤️ 🤗 🥰 👍🏽 👨‍👩‍👧 🇫🇷", "a\x00b\x01c\x7f d\u200be\ufeff f\ufffdg \x1fh \x85i",
    "\u00a0nbsp\u2003em\u3000ideo\u2028ls\u2029ps\u180emvs", "a" * 100, "a" * 101, "supercalifragilistic" * 6,
    "é" * 101, "é" * 60, "İ" * 60, "don't stop--now... (really) [sic] {x} <y> \"q\" 'p' `b` ~t ^c | \\ /",
    "¿Qué? ¡Sí! «quotes» „German“ ‹single› — en–dash … ・ 。、", "email@example.com http://x.y/z?q=1&r=2#frag",
    "[CLS] hello [SEP] [MASK]ed [PAD][UNK] x[SEP]y", "[cls] lower [mask] [[SEP]] [SEP [ SEP ]", "[UNK]" * 3,
    "e\u0301\u0327 a\u0327\u0301 \u0344 o\u0308\u0304 q\u0323\u0307", "مرحبا بالعالم", "שָׁלוֹם עוֹלָם",
    "हिन्दी भाषा", "ภาษาไทย", "Ελληνικά ά έ ή ί ό ύ ώ ΐ", "Tiếng Việt có dấu", "123,456.78 3.14e-10 ½ ² ³",
    "GPT-4o's 'model' can't", "\u1fef\u037e\u0387\u1fed", "ＡＢＣ！ｆｕｌｌ", "ﬁne ﬂow ﬀ", "\uf900\ufa6e\U0002F800",
    "𠀀𠀁 𪜀 𫝀 𫠠 𬺰", "zero\u200dwidth\u200cjoin", "ℌ𝐇𝐞𝐥𝐥𝐨 ℝ ℵ", "tab\tsep\nnew\rret", "x" * 300 + " y",
    "The quick brown fox jumps over the lazy dog. " * 20, "Ａ" * 3 + "\u0301", "\u0130\u0307", "ǰ ŉ ΐ",
    "Straße STRASSE", "ʼapostrophe ʻokina", "\U000E0041tag\U000E007F", "\ue000private\U000F0000use",
    "\U0010FFFF end", "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308 pile",
]
PAIRS = [
    ("short", "a much longer second sentence that will need to be truncated by the tokenizer"),
    ("a much longer first sentence that will need to be truncated by the tokenizer", "short"),
    ("one two three four five six", "seven eight nine ten eleven twelve"),
    ("one two three four five six seven", "eight nine ten eleven twelve thirteen"),
    ("", "only the second side has words in it at all"), ("only the first side has words", ""), ("", ""),
    ("你好世界", "Héllo wörld"), ("[SEP] inside", "[CLS] [MASK]"), ("x" * 150, "y z"),
]


# ---------------------------------------------------------------- 4. every code point
def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or
            0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF or
            0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def rule_words(s, lower, strip, chinese=True):
    """Hugging Face's documented rule with Python's unicodedata: White_Space minus controls is Zs/Zl/Zp;
    "other" (Cc Cf Co Cs) is dropped; unassigned (Cn) is kept, as its crate's empty Cn table does."""
    out = []
    for ch in s:
        cp, cat = ord(ch), unicodedata.category(ch)
        if ch in "\t\n\r" or cat in ("Zs", "Zl", "Zp"):
            out.append(" ")
        elif cp == 0 or cp == 0xFFFD or cat in ("Cc", "Cf", "Co", "Cs"):
            continue
        elif chinese and is_cjk(cp):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    t = "".join(out)
    if strip if strip is not None else lower:
        t = "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn")
    if lower:
        t = "".join(c.lower() for c in t)  # per character: no final-sigma context, as Rust's char::to_lowercase
    words, cur = [], ""
    for c in t:
        punct = (ord(c) < 128 and unicodedata.category(c)[0] in "PS") or unicodedata.category(c)[0] == "P"
        if c == " " or punct:
            if cur:
                words.append(cur)
            cur = ""
            if punct:
                words.append(c)
        else:
            cur += c
    if cur:
        words.append(cur)
    return words


def sweep(lower, strip):
    norm = BertNormalizer(lowercase=lower, strip_accents=strip, clean_text=True, handle_chinese_chars=True)
    pre = BertPreTokenizer()

    def hf_words(s):
        return [w for w, _ in pre.pre_tokenize_str(norm.normalize_str(s))]

    cps = [cp for cp in list(range(0x30000)) + list(range(0x30000, 0x323B0)) + list(range(0xE0000, 0xE1000))
           if not 0xD800 <= cp <= 0xDFFF]
    # Chunks of 512 "a<c>b" words separated by spaces (starters, so NFD reordering stays inside one);
    # chunks that differ are re-run one code point at a time.
    chunk = 512
    groups = [cps[i:i + chunk] for i in range(0, len(cps), chunk)]
    texts = [" ".join("a" + chr(cp) + "b" for cp in g) for g in groups]
    opts = ["--strip-accents", {None: "-1", False: "0", True: "1"}[strip]] + ([] if lower else ["--no-lower-case"])
    c_out = run_tool(texts, *opts, "--words")
    suspects = []
    for g, text, o in zip(groups, texts, c_out):
        if bytes.fromhex(o).decode().split(" ")[:-1] != hf_words(text):
            suspects += g
    single = ["a" + chr(cp) + "b" for cp in suspects]
    c_single = run_tool(single, *opts, "--words") if single else []
    stale = newer = 0
    for cp, s, o in zip(suspects, single, c_single):
        c = bytes.fromhex(o).decode().split(" ")[:-1]
        h = hf_words(s)
        if c == h:
            continue
        r = rule_words(s, lower, strip)
        if unicodedata.category(chr(cp)) == "Cn":
            newer += 1  # assigned after Python's Unicode version: no rule to check it against here
        elif h == r:
            fail(f"sweep lower={lower} strip={strip} U+{cp:04X} ({unicodedata.category(chr(cp))}): "
                 f"hf {h} c {c}")
        elif c == r:
            stale += 1  # the reference's table is older than Unicode's current data; C follows the rule
        else:
            fail(f"sweep lower={lower} strip={strip} U+{cp:04X}: hf {h}, rule {r}, c {c}")
    print(f"code point sweep lower={lower} strip={strip}: {len(cps)} code points, {len(suspects)} re-run singly, "
          f"{stale} where Hugging Face's tables are stale (C follows the rule), {newer} newer than Python's "
          f"Unicode {unicodedata.unidata_version}")


def main():
    import time
    t0 = time.time()
    check_reference()
    sst = sst2_sentences()
    compare("sst2", sst, lower=True)
    # SST-2 is lower-cased text already: the cased path and pairs run on its last 7,607 rows (dev,
    # test), which keeps the test fast; the hard cases below cover both casing modes in full.
    held = sst[-7607:]
    compare("sst2 dev+test", held, lower=False)
    compare("sst2 dev+test pairs", list(zip(held[0::2], held[1::2])), lower=True, max_seq=24)
    hard_all = HARD + [h.upper() for h in HARD] + PAIRS
    for lower, strip, chinese in [(True, None, True), (False, None, True), (True, False, True), (False, True, True),
                                  (True, None, False)]:
        for max_seq in (512, 16, 9, 4, 3):
            lines = hard_all if max_seq >= 3 else HARD
            compare("hard", lines, lower, strip, chinese, max_seq)
    print(f"time so far {time.time() - t0:.1f} s")
    for lower, strip in [(True, None), (False, None), (True, False)]:
        sweep(lower, strip)
        print(f"time so far {time.time() - t0:.1f} s")
    if failures:
        print(f"{failures} failures")
        return 1
    print("all identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
