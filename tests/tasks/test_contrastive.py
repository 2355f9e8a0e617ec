"""ContrastiveTask: collate, loss, retrieval evaluation, and a smoke learning run (colours from pixels)."""
import torch

import lingvis
from lingvis.data.images import ImageTransform
from lingvis.data.shapes import COLOURS, ShapesDataset
from lingvis.recipes.clip_data import train_word_tokenizer
from lingvis.tasks.contrastive import ContrastiveTask
from lingvis.zeroshot import class_embeddings, embed_images


def setup(patch=8):
    tok = train_word_tokenizer([f"a {c} shape" for c in COLOURS])
    vision = {**lingvis.models.preset_config("clip-nano")[1].vision, "patch_size": patch}
    model = lingvis.build("clip-nano", vision=vision, text=dict(vocab_size=tok.vocab_size, context_length=16, dim=32, depth=1,
                                                 heads=4, mlp_hidden=64),
                          eos_token_id=tok.eos_id, bos_token_id=tok.bos_id, pad_token_id=tok.pad_id)
    task = ContrastiveTask(lambda texts: model.tokenize(tok, texts))
    return tok, model, task


def test_collate_loss_and_evaluate():
    torch.manual_seed(0)
    tok, model, task = setup()
    samples = [{"image": torch.randn(3, 32, 32), "text": t} for t in ("a red shape", "a blue shape", "a green shape")]
    batch = task.collate(samples + [None])
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["input_ids"].shape[0] == 3
    assert (batch["input_ids"][:, 0] == tok.bos_id).all()
    loss, metrics = task.loss(model, batch)
    assert loss.requires_grad and 0.0 <= metrics["batch_acc"] <= 1.0 and metrics["logit_scale"] > 1
    out = task.evaluate(model.eval(), [batch, batch])
    assert {"loss", "t2i_R@1", "i2t_R@1", "t2i_R@5", "mean_R@1"} <= set(out) and out["pairs"] == 6


def test_smoke_learning_colours_zero_shot():
    """A nano CLIP (32px, patch 4) trained for 80 steps on captions of one-shape scenes beats chance by far
    at naming the colour of held-out images (zero-shot, 6 colours; chance 1/6)."""
    torch.manual_seed(0)
    tok, model, task = setup(patch=4)
    tf = ImageTransform(size=32)
    train = ShapesDataset("train", n=480, image_size=32, transform=tf, min_objects=1, max_objects=1)
    test = ShapesDataset("test", n=60, image_size=32, min_objects=1, max_objects=1)
    colour = [f"a {s.objects[0].colour} shape" for s in train.scenes]
    pixels = torch.stack([train[i]["image"] for i in range(len(train))])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses = []
    for step in range(80):
        idx = torch.randperm(len(train))[:32]
        batch = task.collate([{"image": pixels[i], "text": colour[i]} for i in idx.tolist()])
        loss, _ = task.loss(model, batch)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    names = list(COLOURS)
    with torch.no_grad():
        logits = embed_images(model, [test[i]["image"] for i in range(len(test))]) @ \
            class_embeddings(model, tok, names, ["a {} shape"]).t()
    truth = torch.tensor([names.index(s.objects[0].colour) for s in test.scenes])
    acc = (logits.argmax(-1) == truth).float().mean().item()
    assert sum(losses[-10:]) / 10 < sum(losses[:5]) / 5 - 0.5, losses
    assert acc >= 0.6, acc
