"""Token classification: built-in BIO set through the recipe; entity-level F1 on held-out sentences."""
import pytest

import lingvis
from lingvis.data.tasks_text import TaggedSentence, TaskDataError
from lingvis.recipes.bert_finetune import FinetuneArgs, finetune
from lingvis.tasks.tag import encode_tagging, entities, predict_tags
from lingvis.tokenizers import train_wordpiece
from lingvis.train.config import TrainConfig


def test_finetune_tag_builtin_held_out_f1(tmp_path):
    args = FinetuneArgs(task="tag", out=str(tmp_path / "run"), preset="bert-tiny", vocab_size=800, max_len=48,
                        overrides={"n_embd": 96, "n_head": 2, "mlp_hidden": 192})
    cfg = TrainConfig(max_steps=150, batch_size=16, lr=2e-3, warmup_steps=15, weight_decay=0.01, eval_every=75,
                      eval_batches=4, seed=0, progress=False)
    summary = finetune(args, cfg)
    f1, unseen = summary["test_metrics"]["f1"], summary["test_unseen_metrics"]["f1"]
    print(f"held-out entity F1 {f1:.3f}; with never-seen names {unseen:.3f} (chance ~0)")
    assert f1 > 0.8
    assert unseen > 0.1
    model, tok = lingvis.load(tmp_path / "run"), lingvis.load_tokenizer(tmp_path / "run")
    words = "Yesterday Alice Novak met Bruno at the Globex office .".split()
    tags = predict_tags(model, tok, [words])[0]
    assert len(tags) == len(words)
    assert {e["text"] for e in entities(words, tags)} >= {"Alice Novak", "Globex"}


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(["Alice visited Paris with Acme Corp colleagues"] * 10, vocab_size=80, lowercase=False)


def test_long_sentences_are_chunked_and_first_pieces_labelled(tok):
    words = ["Alice", "visited", "Paris"] * 20
    tags = ["B-PER", "O", "B-LOC"] * 20
    feats = encode_tagging(tok, [TaggedSentence(words, tags, "x:1")], ["O", "B-PER", "B-LOC"], max_len=12)
    assert len(feats) > 1 and all(len(f["ids"]) <= 12 for f in feats)
    assert sum(len(f["first_positions"]) for f in feats) == len(words)  # every word kept, in some chunk
    for f in feats:
        labelled = [i for i, t in enumerate(f["tag_ids"]) if t != -100]
        assert labelled == f["first_positions"]


def test_unknown_tag_names_sentence_and_word(tok):
    bad = [TaggedSentence(["Alice", "ran"], ["B-PER", "B-VERB"], "train.conll:7")]
    with pytest.raises(TaskDataError, match=r"train\.conll:7 \(word 2 'ran'\): unknown tag 'B-VERB'"):
        encode_tagging(tok, bad, ["O", "B-PER"], max_len=16)


def test_predict_tags_covers_every_word_of_long_input(tok):
    model = lingvis.build("bert-tiny", vocab_size=tok.vocab_size, head="tag", labels=["O", "B-PER"], max_positions=16)
    words = ["Alice", "visited", "Paris"] * 15
    assert len(predict_tags(model.eval(), tok, [words])[0]) == 45
