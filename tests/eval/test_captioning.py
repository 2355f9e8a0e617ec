import math
import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from lingvis.eval.captioning import bleu, caption_scores, caption_tokenize, cider_d

VOCAB = ("a man woman dog cat riding sitting on the of with red blue ball bike street park "
         "grass playing two people table plate pizza, frisbee. Large small near next to").split()
REAL = [
    (["A man riding a bike down the street.", "A person rides a bicycle on a city street.",
      "Man on a bike in traffic."], "a man riding a bike on the street"),
    (["Two dogs play with a frisbee in the park.", "Dogs running on grass.", "Two dogs chase a frisbee."],
     "two dogs playing with a frisbee"),
    (["A pizza on a white plate.", "A plate holds a cheese pizza.", "Pizza sitting on a table."],
     "a pizza on a plate on a table"),
    (["A cat sleeping on a couch.", "A grey cat lies on the sofa."], "a dog sitting on a bench"),
    (["People walking near the beach at sunset."], "people on the beach"),
]


def _random_set(seed):
    rng = random.Random(seed)
    n_images = rng.randint(1, 12)
    refs, cands = {}, {}
    for i in range(n_images):
        refs[i] = [" ".join(rng.choices(VOCAB, k=rng.randint(1, 14))) for _ in range(rng.randint(1, 5))]
        roll = rng.random()
        if roll < 0.05:
            cands[i] = ""  # empty caption
        elif roll < 0.4:  # partly copied from a reference
            words = rng.choice(refs[i]).split()
            cands[i] = " ".join(words[: rng.randint(1, len(words))] + rng.choices(VOCAB, k=rng.randint(0, 3)))
        else:
            cands[i] = " ".join(rng.choices(VOCAB, k=rng.randint(1, 16)))
    return refs, cands


def _coco(refs, cands):
    gts = {k: [" ".join(caption_tokenize(r)) for r in v] for k, v in refs.items()}
    res = {k: [" ".join(caption_tokenize(cands[k]))] for k in refs}
    b, b_per = Bleu(4).compute_score(gts, res, verbose=0)
    c, c_per = Cider().compute_score(gts, res)
    return b, b_per, c, c_per


CASES = [_random_set(seed) for seed in range(36)] + [
    ({i: r for i, (r, _) in enumerate(REAL)}, {i: c for i, (_, c) in enumerate(REAL)}),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_parity_with_pycocoevalcap(case):
    refs, cands = CASES[case]
    ref_bleu, ref_bleu_per, ref_cider, ref_cider_per = _coco(refs, cands)
    ours_bleu, ours_bleu_per = bleu(refs, cands)
    assert ours_bleu == pytest.approx(ref_bleu, abs=1e-9, rel=1e-9)
    for k in range(4):
        assert [ours_bleu_per[key][k] for key in refs] == pytest.approx(ref_bleu_per[k], abs=1e-9, rel=1e-9)
    ours_cider, ours_cider_per = cider_d(refs, cands)
    assert ours_cider == pytest.approx(float(ref_cider), abs=1e-9, rel=1e-9)
    assert [ours_cider_per[key] for key in refs] == pytest.approx(list(ref_cider_per), abs=1e-9, rel=1e-9)


def test_known_properties():
    refs = {0: ["a cat on a mat"], 1: ["a dog in the park"], 2: ["two birds fly"]}
    perfect = {k: v[0] for k, v in refs.items()}
    b, _ = bleu(refs, perfect)
    assert b == pytest.approx([1.0] * 4)
    assert cider_d(refs, perfect)[0] > cider_d(refs, {0: "a cat", 1: "a dog", 2: "birds"})[0] > 0
    # brevity penalty: BLEU-1 of a prefix = exp(1 - r/c) when all unigrams match
    b1 = bleu({0: ["a b c d"]}, {0: "a b"})[0][0]
    assert b1 == pytest.approx(math.exp(1 - 4 / 2))
    scores = caption_scores(refs, {0: ["A cat, on a mat!"], 1: "a dog", 2: "birds"})
    assert set(scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D"}


def test_tokenize_and_errors():
    assert caption_tokenize("A man's T-shirt, red.") == ["a", "man", "s", "t", "shirt", "red"]
    with pytest.raises(ValueError, match="ids differ"):
        bleu({0: ["a"]}, {1: "a"})
    with pytest.raises(ValueError, match="expected one caption, got 2"):
        cider_d({0: ["a"]}, {0: ["a", "b"]})
    with pytest.raises(ValueError, match=r"references\[0\]: expected a non-empty list"):
        bleu({0: "a cat"}, {0: "a cat"})
