"""Generative VQA through the captioner: batching, a smoke-level learning check, the recipe and the CLI."""
import pytest
import torch

from lingvis.cli import main
from lingvis.data.shapes import generate_shapes
from lingvis.data.vqa import read_vqa
from lingvis.data.vqa_dataset import VQADataset
from lingvis.models import build
from lingvis.recipes.caption import image_transform
from lingvis.recipes.translate import SPECIALS
from lingvis.tasks.seq2seq import IGNORE
from lingvis.tasks.vqa_generative import GenerativeVQATask, majority_answer
from lingvis.tokenizers import train_bpe


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, n_train=8, n_val=2, n_test=2, image_size=32, seed=0)
    return root


@pytest.fixture(scope="module")
def setup(shapes):
    train = read_vqa(shapes, "train")
    tok = train_bpe([e.question + " answer: " + e.answers[0] for e in train] * 4, 400, SPECIALS)
    torch.manual_seed(0)
    model = build("captioner-nano")
    model = build("captioner-nano", decoder={**model.config.decoder, "vocab_size": tok.vocab_size,
                                             "block_size": 48},
                  bos_id=tok.bos_id, eos_id=tok.eos_id, pad_id=tok.pad_id)
    return train, tok, model


def test_majority_answer_normalises():
    assert majority_answer(["Two", "2", "3"]) == "2"


def test_collate_masks_the_prompt(setup):
    train, tok, model = setup
    task = GenerativeVQATask(tok, tok.bos_id, tok.eos_id, tok.pad_id, model.context_length)
    ds = VQADataset(train, image_transform(model))
    b = task.collate([ds[0], ds[1]])
    n_prompt = len(b["prompts"][0])
    assert (b["labels"][0, :n_prompt - 1] == IGNORE).all()
    answer_ids = [t for t in b["labels"][0].tolist() if t != IGNORE]
    assert answer_ids[-1] == tok.eos_id
    assert tok.decode(answer_ids[:-1]).strip() == majority_answer(train[0].answers)


def test_decoder_learns_answers_of_a_few_questions(setup):
    train, tok, model = setup
    task = GenerativeVQATask(tok, tok.bos_id, tok.eos_id, tok.pad_id, model.context_length)
    few = train[:6]
    b = task.collate([VQADataset(few, image_transform(model))[i] for i in range(6)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        loss, _ = task.loss(model, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = task.evaluate(model, [b])
    assert out["token_acc"] > 0.8 and out["vqa_accuracy"] > 50


def test_cli_generative_finetune_and_answer(shapes, tmp_path, capsys):
    args = ["finetune", "vqa", "--generative", "--data", str(shapes), "--out", str(tmp_path / "g"),
            "--preset", "captioner-nano", "--max-steps", "2", "--batch-size", "8", "--eval-every", "2",
            "--eval-batches", "1", "--warmup-steps", "1", "--no-progress", "--vocab-size", "400"]
    assert main(args) == 0
    assert "[vqa] test: VQA accuracy" in capsys.readouterr().out
    image = next((shapes / "images").glob("test_*.png"))
    assert main(["vqa", "--model", str(tmp_path / "g"), "--image", str(image), "--question", "is it red?"]) == 0
    assert capsys.readouterr().out.startswith("Q: is it red?\nA:")
    assert main(["vqa", "--model", str(tmp_path / "g"), "--image", str(image), "--question", "x", "--top-k", "2"]) == 2
