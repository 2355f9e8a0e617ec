"""The BERT demo step's from-scratch settings: its Muon pretraining runs on the demo preset (the tied MLM decoder
and the embeddings stay on AdamW) and lowers the MLM loss; its fine-tuning plan fits its minute shares."""
import torch

import lingvis
from lingvis.data.mlm import MaskingConfig, MLMCollator, PairInstance
from lingvis.demo.bert import FINETUNE, PRESET, PRETRAIN, SHARES
from lingvis.tasks.mlm import PretrainTask
from lingvis.train.config import TrainConfig
from lingvis.train.optim import MuonAdamW, make_optimizer, muon_params

V = 40


def test_demo_shares_cover_the_step_once():
    assert abs(sum(SHARES.values()) - 1.0) < 1e-9 and min(SHARES.values()) > 0
    assert PRETRAIN["optimizer"] == "muon" and FINETUNE["max_steps"] * FINETUNE["batch_size"] > 7723  # > 1 pass


def test_demo_pretraining_muon_on_the_demo_preset_lowers_mlm_loss():
    torch.manual_seed(0)
    model = lingvis.build(PRESET, vocab_size=V, head="pretraining")
    hidden, rest = muon_params(model)
    ids, adamw = {id(p) for p in hidden}, {id(p) for p in rest}
    assert id(model.tok_emb.weight) in adamw and id(model.mlm.decoder.weight) not in ids  # tied: AdamW
    assert id(model.shift.proj.weight) in ids and id(model.blocks[0].attn.qkv.weight) in ids
    cfg = TrainConfig(**{**PRETRAIN, "max_steps": 30, "warmup_steps": 3})
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    assert isinstance(opt, MuonAdamW)
    task = PretrainTask(MLMCollator(V, 0, 4, [0, 1, 2, 3, 4], None, MaskingConfig(mlm_prob=0.3)))
    seq = [1] + [5 + (i % 7) for i in range(20)] + [2]  # a periodic text: the masked token follows from its neighbours
    samples = [PairInstance(seq, [0] * len(seq), 1) for _ in range(8)]
    losses = []
    for _ in range(30):
        loss, _ = task.loss(model, task.collate(samples))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
