"""VQA classification task, prediction helpers and the fine-tuning recipe on tiny shapes data."""
import json

import pytest
import torch

import lingvis
from lingvis.data.shapes import generate_shapes
from lingvis.data.vqa import read_vqa
from lingvis.data.vqa_answers import AnswerVocab
from lingvis.data.vqa_dataset import FusionImageTransform, VQADataset
from lingvis.models import build
from lingvis.recipes.vqa import VQAFinetuneArgs, finetune_vqa
from lingvis.tasks.vqa import VQATask, answer_questions, encode_texts, evaluate_vqa
from lingvis.tokenizers.wordpiece import train_wordpiece
from lingvis.train.config import TrainConfig


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, n_train=12, n_val=4, n_test=4, image_size=32, seed=0)
    return root


@pytest.fixture(scope="module")
def setup(shapes):
    train = read_vqa(shapes, "train")
    tok = train_wordpiece([e.question for e in train], 200, min_frequency=1)
    vocab = AnswerVocab.build([e.answers for e in train])
    torch.manual_seed(0)
    model = build("fusion-tiny", vocab_size=tok.vocab_size, answers=vocab.answers)
    return train, tok, vocab, model


def test_encode_texts_adds_cls_sep_and_pads(setup):
    _, tok, _, _ = setup
    ids, mask = encode_texts(tok, ["what shape is the red object?", "a star?"], max_len=6)
    assert ids.shape == (2, 6) and ids[0, 0] == tok.cls_id and ids[0, -1] == tok.sep_id
    assert mask[1].sum() < 6 and ids[1, mask[1].sum():].eq(tok.pad_id).all()


def test_collate_loss_and_evaluate(setup):
    train, tok, vocab, model = setup
    task = VQATask(tok, model.config.max_text_len)
    ds = VQADataset(train, FusionImageTransform.for_model(model.config), vocab)
    batch = task.collate([ds[i] for i in range(8)])
    assert batch["targets"].shape == (8, len(vocab)) and batch["pixel_mask"].shape == (8, 32, 32)
    loss, metrics = task.loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and 0 <= metrics["vqa_score"] <= 1
    out = task.evaluate(model.eval(), [batch])
    types = {e.question_type.replace("/", "_") for e in train[:8]}
    assert {f"acc_{t}" for t in types} <= set(out) and 0 <= out["vqa_accuracy"] <= 100


def test_classifier_learns_beyond_the_majority_answer(setup):
    """Smoke-level learning: a tiny model fits 8 questions better than always giving their majority answer."""
    train, tok, vocab, _ = setup
    torch.manual_seed(0)
    model = build("fusion-tiny", vocab_size=tok.vocab_size, answers=vocab.answers)
    task = VQATask(tok, model.config.max_text_len)
    few = train[:8]
    batch = task.collate([VQADataset(few, FusionImageTransform.for_model(model.config), vocab)[i] for i in range(8)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(120):
        loss, _ = task.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    majority = batch["targets"].mean(0).max().item() * 100  # best constant answer's mean score
    assert evaluate_vqa(model.eval(), tok, few).overall > majority + 20


def test_softmax_loss_uses_normalised_soft_scores_and_skips_unanswerable_rows():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [1.0, 2.0, 3.0]])
    targets = torch.tensor([[0.6, 0.3, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # row 1: no answer in the vocabulary
    want = torch.stack([-(torch.tensor([2 / 3, 1 / 3, 0.0]) * logits[0].log_softmax(-1)).sum(),
                        -logits[2].log_softmax(-1)[0]]).mean()
    assert torch.allclose(VQATask.soft_cross_entropy(logits, targets), want)
    assert VQATask.soft_cross_entropy(logits[1:2], targets[1:2]) == 0


def test_softmax_model_trains_and_reports_probabilities(setup):
    train, tok, vocab, _ = setup
    torch.manual_seed(0)
    model = build("fusion-tiny", vocab_size=tok.vocab_size, answers=vocab.answers, vqa_loss="softmax")
    task = VQATask(tok, model.config.max_text_len)
    batch = task.collate([VQADataset(train, FusionImageTransform.for_model(model.config), vocab)[i] for i in range(8)])
    loss, _ = task.loss(model, batch)
    assert torch.allclose(loss, VQATask.soft_cross_entropy(model.vqa_logits(model(**{k: batch[k] for k in (
        "input_ids", "attention_mask", "pixel_values", "pixel_mask")})), batch["targets"]))
    probs = answer_questions(model.eval(), tok, train[0].image, ["is there a star?"], top_k=len(vocab))[0]
    assert abs(sum(p for _, p in probs) - 1) < 1e-4  # one distribution over the answers
    with pytest.raises(ValueError, match="vqa_loss"):
        build("fusion-tiny", answers=["yes"], vqa_loss="hinge")


def test_answer_questions_top_k(setup):
    train, tok, _, model = setup
    answers = answer_questions(model, tok, train[0].image, ["is there a star?", "what colour is the circle?"], 3)
    assert len(answers) == 2 and len(answers[0]) == 3
    assert all(a in model.config.answers and 0 <= p <= 1 for a, p in answers[0])
    with pytest.raises(ValueError, match="non-empty"):
        answer_questions(model, tok, train[0].image, ["  "])


def test_finetune_recipe_writes_run_and_scores_test_splits(shapes, tmp_path, capsys):
    args = VQAFinetuneArgs(out=str(tmp_path / "run"), data=str(shapes), preset="fusion-tiny", vocab_size=200)
    cfg = TrainConfig(max_steps=3, batch_size=8, eval_every=3, eval_batches=2, warmup_steps=1, progress=False)
    summary = finetune_vqa(args, cfg)
    assert summary["step"] == 3 and "vqa_accuracy" in summary["eval"]
    assert set(summary["test"]) == {"test", "test_unseen"}
    assert "per_question_type" in summary["test"]["test_unseen"]
    assert "train questions have an answer in the vocabulary" in capsys.readouterr().out
    model = lingvis.load(tmp_path / "run")
    assert model.config.answers == summary_answers(shapes)
    assert json.loads((tmp_path / "run" / "vqa_summary.json").read_text())["answers"] == len(model.config.answers)


def summary_answers(shapes):
    return AnswerVocab.build([e.answers for e in read_vqa(shapes, "train")]).answers


def test_recipe_reports_answers_missing_from_the_vocabulary(shapes, tmp_path, capsys):
    args = VQAFinetuneArgs(out=str(tmp_path / "run"), data=str(shapes), preset="fusion-tiny", vocab_size=200,
                           max_answers=3, test_splits=[])
    cfg = TrainConfig(max_steps=1, batch_size=8, eval_every=1, eval_batches=1, warmup_steps=1, progress=False)
    summary = finetune_vqa(args, cfg)
    out = capsys.readouterr().out
    assert summary["oov"]["train"]["out_of_vocab"] > 0
    assert f"{summary['oov']['train']['out_of_vocab']} of {summary['train_questions']} train questions" in out
    assert "most frequent missing answers" in out
