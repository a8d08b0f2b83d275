"""toy_task.py — a tiny synthetic sentence task for the end-to-end tests (tests/test_e2e.py).

Every sentence holds exactly three "sentiment" words, each drawn from POSITIVE or NEGATIVE, among
3..8 filler words in random order. The class label is the majority polarity of the three
(pos when at least two are positive); the regression target is the fraction of positive ones
(0, 1/3, 2/3 or 1). Both are exact functions of which words occur, so the Bayes accuracy is 100%
and a 1-2 layer BERT can learn them from a few hundred rows; a model that ignored the words
would be at chance (about 50%, the classes are balanced by construction: P(k >= 2) = 1/2 for
k ~ Binomial(3, 1/2)).

write_task(dir, seed) writes, into `dir` (never the repository):
  vocab.txt                     [PAD] [UNK] [CLS] [SEP] [MASK] + the 56 words, lower case
  train.tsv, dev.tsv            header `sentence<TAB>label`, labels `neg`/`pos`
  train_reg.tsv, dev_reg.tsv    the same sentences with the float target as label
and returns the dev class labels (0/1) and regression targets, for computing chance levels.
"""
import os
import random

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = "good great fine happy bright warm kind nice sweet calm".split()
NEGATIVE = "bad awful poor sad dark cold cruel nasty bitter harsh".split()
FILLER = ("the a an this that movie film story plot actor scene music day night city house road "
          "tree river cat dog man woman child book song game was is very quite really and").split()


def _row(rng):
    k = sum(rng.random() < 0.5 for _ in range(3))  # how many of the 3 sentiment words are positive
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
    for i in range(3):
        w = rng.choice(POSITIVE if i < k else NEGATIVE)
        words.insert(rng.randrange(len(words) + 1), w)
    return " ".join(words), int(k >= 2), k / 3.0


def write_task(out_dir, seed=7, n_train=390, n_dev=100):
    """Writes the files listed above; returns {'dev_labels': [...], 'dev_targets': [...]}."""
    rng = random.Random(seed)
    with open(os.path.join(out_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(SPECIAL + POSITIVE + NEGATIVE + FILLER) + "\n")
    result = {}
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [_row(rng) for _ in range(n)]
        with open(os.path.join(out_dir, split + ".tsv"), "w") as f:
            f.write("sentence\tlabel\n")
            for text, y, _ in rows:
                f.write("%s\t%s\n" % (text, "pos" if y else "neg"))
        with open(os.path.join(out_dir, split + "_reg.tsv"), "w") as f:
            f.write("sentence\tlabel\n")
            for text, _, t in rows:
                f.write("%s\t%.6f\n" % (text, t))
        result[split + "_labels"] = [y for _, y, _ in rows]
        result[split + "_targets"] = [t for _, _, t in rows]
    return result
