import math

import pytest
import torch

import lingvis
from lingvis.train.config import TrainConfig
from lingvis.train.optim import lr_at, make_optimizer, param_groups


def test_weight_decay_groups_split_matrices_from_vectors():
    model = lingvis.build("gpt-nano", vocab_size=11)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert any(p is model.wte.weight for p in decay["params"])
    assert any(p is model.ln_f.bias for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_frozen_parameters_are_left_out():
    model = lingvis.build("gpt-nano", vocab_size=11)
    model.wte.weight.requires_grad_(False)
    groups = param_groups(model, 0.1)
    assert not any(p is model.wte.weight for g in groups for p in g["params"])


def test_optimizer_settings():
    cfg = TrainConfig(lr=2e-3, beta1=0.8, beta2=0.9, weight_decay=0.05)
    opt = make_optimizer(lingvis.build("gpt-nano", vocab_size=11), cfg, torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["betas"] == (0.8, 0.9) and opt.param_groups[0]["weight_decay"] == 0.05


def test_warmup_then_cosine_to_min_lr():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)  # half way through the cosine
    assert lr_at(110, cfg) == pytest.approx(0.1) and lr_at(500, cfg) == pytest.approx(0.1)
    lrs = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lr_at(110, TrainConfig(lr=1.0, warmup_steps=0, max_steps=110)) == pytest.approx(0.1)  # lr / 10
    assert not math.isnan(lr_at(0, TrainConfig(warmup_steps=5, max_steps=3)))


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    from lingvis.train.optim import MuonAdamW, muon_params

    model = lingvis.build("gpt-nano", vocab_size=11)
    hidden, rest = muon_params(model)
    assert hidden and all(p.dim() == 2 for p in hidden)
    assert not any(p is model.wte.weight or p is model.wpe.weight for p in hidden)  # embeddings (and tied head)
    assert any(p is model.wte.weight for p in rest) and any(p is model.ln_f.bias for p in rest)
    assert len(hidden) + len(rest) == len(list(model.parameters()))
    opt = make_optimizer(model, TrainConfig(lr=2e-3, optimizer="muon"), torch.device("cpu"))
    assert isinstance(opt, MuonAdamW) and len(opt.param_groups) == 3  # Muon's group + AdamW's two
    assert all(g["lr"] == 2e-3 for g in opt.param_groups)


def test_muon_learns_and_its_state_round_trips_through_a_weights_only_load(tmp_path):
    def run(steps: int, opt=None, model=None):
        torch.manual_seed(0)
        model = model or lingvis.build("gpt-nano", vocab_size=11, block_size=16)
        opt = opt or make_optimizer(model, TrainConfig(lr=3e-3, optimizer="muon"), torch.device("cpu"))
        x = torch.randint(0, 11, (8, 17), generator=torch.Generator().manual_seed(1))
        losses = []
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        return model, opt, losses

    model, opt, losses = run(20)
    assert losses[-1] < 0.8 * losses[0]
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    _, _, more = run(3, opt, model)  # continue in place ...
    model2, opt2, _ = run(20)
    opt2.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))
    _, _, resumed = run(3, opt2, model2)  # ... and from the saved state: the same losses
    assert resumed == more
    with pytest.raises(ValueError, match="not a Muon"):
        opt.load_state_dict(torch.optim.AdamW(model.parameters()).state_dict())


def test_muon_is_refused_where_it_cannot_run():
    with pytest.raises(ValueError, match="optimizer must be adamw or muon"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="fp16"):
        TrainConfig(optimizer="muon", precision="fp16")


def test_lr_scale_splits_groups_by_prefix():
    model = lingvis.build("gpt-nano", vocab_size=11)
    groups = param_groups(model, 0.1, {"ln_f": 10.0, "wte": 3.0})
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale[id(model.ln_f.weight)] == 10.0 and scale[id(model.ln_f.bias)] == 10.0
    assert scale[id(model.wte.weight)] == 3.0
    others = [n for n, p in model.named_parameters() if not n.startswith(("ln_f.", "wte."))]
    assert others and all(scale[id(p)] == 1.0 for n, p in model.named_parameters() if n in others)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(model.ln_f.bias)] == 0.0 and decay[id(model.wte.weight)] == 0.1


def test_lr_scale_longest_prefix_wins_and_whole_name_parts():
    model = lingvis.build("gpt-nano", vocab_size=11)
    name = next(n for n, _ in model.named_parameters() if n.startswith("blocks.0."))
    groups = param_groups(model, 0.1, {"blocks": 2.0, "blocks.0": 5.0})
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert scale[id(params[name])] == 5.0
    assert all(scale[id(p)] == 2.0 for n, p in params.items() if n.startswith("blocks.1."))
    with pytest.raises(ValueError, match="'block'"):  # a prefix matches whole name parts only
        param_groups(model, 0.1, {"block": 2.0})


def test_lr_scale_config_parsing():
    assert TrainConfig(lr_scale="vqa_head=10, image.stem=2.5").lr_scale == {"vqa_head": 10.0, "image.stem": 2.5}
    for bad in ("vqa_head", "vqa_head=x", "vqa_head=0"):
        with pytest.raises(ValueError, match="lr_scale"):
            TrainConfig(lr_scale=bad)



def test_lr_scale_reaches_muon_and_adamw_groups():
    model = lingvis.build("gpt-nano", vocab_size=11)
    opt = make_optimizer(model, TrainConfig(lr=1e-3, optimizer="muon", lr_scale={"blocks.0": 4.0, "wte": 2.0}),
                         torch.device("cpu"))
    scale = {id(p): g["lr_scale"] for g in opt.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert all(scale[id(p)] == 4.0 for n, p in params.items() if n.startswith("blocks.0."))
    assert scale[id(model.wte.weight)] == 2.0
    assert all(scale[id(p)] == 1.0 for n, p in params.items() if n.startswith("blocks.1."))
    assert len(scale) == len(params)
