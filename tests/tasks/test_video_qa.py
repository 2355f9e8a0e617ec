"""Video QA task: loss on the answer only, one encoding per video for all of its questions, greedy accuracy."""
import torch

from lingvis.models import registry
from lingvis.tasks.seq2seq import IGNORE
from lingvis.tasks.video_qa import QASample, VideoQATask

BOS, EOS, PAD = 1, 2, 0


def _model():
    torch.manual_seed(0)
    return registry.build("video-captioner-nano", decoder={**registry.PRESETS["video-captioner-nano"][1]["decoder"],
                                                           "vocab_size": 20}, bos_id=BOS, eos_id=EOS, pad_id=PAD)


def _batch(task):
    v1, v2 = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    items = [[QASample(v1, [5, 6, 7], [8]), QASample(v1, [5, 9], [10, 11])], None, QASample(v2, [12], [13])]
    return task.collate(items), v1, v2


def test_collate_masks_the_question_and_shares_the_video():
    task = VideoQATask(BOS, EOS, PAD)
    b, _, v2 = _batch(task)
    assert b["pixels"].shape == (2, 4, 3, 32, 32) and torch.equal(b["pixels"][1], v2)
    assert b["video_index"].tolist() == [0, 0, 1]
    assert b["tgt_in"][0].tolist() == [BOS, 5, 6, 7, 8]
    assert b["labels"][0].tolist() == [IGNORE] * 3 + [8, EOS]
    assert b["labels"][1].tolist() == [IGNORE, IGNORE, 10, 11, EOS]
    assert b["labels"][2].tolist() == [IGNORE, 13, EOS, IGNORE, IGNORE]


def test_loss_matches_per_question_decoding_and_learns_answers():
    model, task = _model(), VideoQATask(BOS, EOS, PAD, label_smoothing=0.0, max_new_tokens=4)
    b, v1, v2 = _batch(task)
    model.eval()
    loss, _ = task.loss(model, b)
    logits = model(torch.stack([v1, v1, v2]), b["tgt_in"])  # each question with its own copy of the video
    ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b["labels"].flatten(), ignore_index=IGNORE)
    assert torch.allclose(loss, ref, atol=1e-5)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        task.loss(model, b)[0].backward()
        opt.step()
    model.eval()
    ev = task.evaluate(model, [b])
    assert ev["qa_accuracy"] == 1.0 and ev["loss"] < 0.1, ev


def test_question_weight_adds_the_question_tokens_loss_in_training():
    model = _model()
    b, _, _ = _batch(VideoQATask(BOS, EOS, PAD))
    assert b["question_labels"][0].tolist() == [5, 6, 7, IGNORE, IGNORE]
    plain = VideoQATask(BOS, EOS, PAD, label_smoothing=0.0)
    weighted = VideoQATask(BOS, EOS, PAD, label_smoothing=0.0, question_weight=0.5)
    model.train()
    base, _ = plain.loss(model, b)
    total, m = weighted.loss(model, b)
    assert torch.allclose(total, base + 0.5 * m["question_loss"], atol=1e-5) and m["question_loss"] > 0
    model.eval()
    assert torch.allclose(weighted.loss(model, b)[0], plain.loss(model, b)[0])  # evaluation: answers only
