"""The whole shapes chain (`lingvis.recipes.llava_shapes`), tiny: shapes files, a captioner (its ViT is the tower;
or a CLIP's, or a new ViT trained on the scenes' ground truth), LM on the
instruction set's text, stage 1 and stage 2, each stage logged with its CPU time and steps; `reuse` keeps
finished runs; the LM corpus holds the conversations without image placeholders."""
import dataclasses
import json
import shutil

import pytest
import torch

import lingvis
from lingvis.data.shapes_instruct import InstructConfig
from lingvis.data.shapes_language import REGION_PHRASES
from lingvis.recipes.llava_shapes import ShapesPlan, Stage, lm_corpus, loss_curve, scale_plan, stage_config, train_chain

STAGES = ("captioner", "lm", "stage1", "stage2")  # the default plan's (tower="captioner")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    out = tmp_path_factory.mktemp("chain")
    tiny = Stage(2, 4, 1e-3)
    plan = ShapesPlan(n_train=30, n_val=2, n_test=1, clip=tiny, captioner=tiny, lm=tiny, stage1=tiny, stage2=tiny,
                      llm=dict(n_layer=1, n_head=2, n_embd=32), block_size=128, vocab_size=300, train_vision=True)
    return out, plan, train_chain(out, plan)


def test_stage_validation_interval():
    assert stage_config(Stage(100, 8, 1e-3)).eval_every == 100  # once, at the end
    assert stage_config(Stage(100, 8, 1e-3, eval_every=25)).eval_every == 25
    assert stage_config(Stage(100, 8, 1e-3, eval_every=500)).eval_every == 100
    assert stage_config(Stage(100, 8, 1e-3)).max_minutes is None
    assert stage_config(Stage(100, 8, 1e-3, max_minutes=30.0)).max_minutes == 30.0  # a wall-clock budget too


def test_scale_plan():
    plan = scale_plan(stage2_minutes=40.0)
    assert (plan.n_train, plan.tower, plan.block_size, plan.spatial_merge) == (16000, "dense", 256, 2)
    assert plan.stage2.max_minutes == 40.0 and scale_plan().stage2.max_minutes is None
    assert plan.dense_more.steps == 600 and plan.scaled(0.5).dense_more.steps == 300
    assert ShapesPlan().scaled(0.5).dense_more is None
    assert ShapesPlan().instruct == InstructConfig.plain()  # the small plan's set, as measured
    # the scale plan: the chain that met every target from scratch (docs/llava.md, 2026-12-08)
    assert plan.instruct == InstructConfig(relative_pairs=0, region_turns=2, relative_rationale=3)
    assert (plan.vocab_size, plan.image_position, plan.stage1_captions, plan.split_words) == \
        (448, "onehot", "regions", "left/right,above/below")
    assert (ShapesPlan().vocab_size, ShapesPlan().image_position, ShapesPlan().split_words) == (400, "none", None)


def test_loss_curve_pairs_validation_with_recent_training_losses(tmp_path):
    rows = [{"step": s, "split": "train", "loss": x} for s, x in ((1, 4.0), (2, 3.0), (3, 2.0))]
    rows += [{"step": 3, "split": "val", "loss": 2.5}, {"step": 4, "split": "train", "loss": 1.0},
             {"step": 4, "split": "val", "loss": 2.25}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert loss_curve(tmp_path, window=2) == [{"step": 3, "val_loss": 2.5, "train_loss": 2.5},
                                              {"step": 4, "val_loss": 2.25, "train_loss": 1.5}]


def test_every_stage_runs_and_is_logged(chain):
    out, _, log = chain
    for name in STAGES:
        assert log[name]["steps"] == 2 and log[name]["cpu_s"] >= 0 and "load_start" in log[name]
        assert (out / name / "checkpoints" / "last.json").is_file()
    assert log["all_train_cpu_s"] >= log["llava_train_cpu_s"] and not (out / "clip").exists()
    model = lingvis.load(out / "stage2")
    assert model.family == "llava" and model.llm.config.n_layer == 1
    stage2 = json.loads((out / "stage2" / "train_config.json").read_text())
    assert stage2["max_steps"] == 2 and stage2["batch_size"] == 4
    tower = {k: lingvis.load(out / s).vision.patch_embed.weight for k, s in (("1", "stage1"), ("2", "stage2"))}
    assert not tower["1"].equal(tower["2"])  # plan.train_vision: stage 2 tuned the tower
    curve = loss_curve(out / "stage2")  # eval_every defaults to the stage's steps: one validation point
    assert [c["step"] for c in curve] == [2] and curve[0]["val_loss"] > 0 and curve[0]["train_loss"] > 0


def test_lm_corpus_has_conversations_without_images(chain):
    out, _, _ = chain
    rows = [json.loads(x)["text"] for x in (out / "shapes" / "lm_corpus.jsonl").read_text().splitlines()]
    assert rows and not any("<image>" in r for r in rows)
    convs = [r for r in rows if r.startswith("<|user|>\n")]  # lingvis's default chat template
    assert convs and all("<|assistant|>\n" in r for r in convs)
    assert len(rows) > len(convs)  # the captions follow the conversations
    assert lm_corpus(out / "shapes") == out / "shapes" / "lm_corpus.jsonl"


def test_reuse_keeps_finished_runs(chain):
    out, plan, _ = chain
    before = {s: (out / s / "checkpoints" / "last.json").stat().st_mtime_ns for s in STAGES}
    log = train_chain(out, plan, reuse=True)
    assert not set(STAGES) & set(log) and log["all_train_cpu_s"] == 0
    assert before == {s: (out / s / "checkpoints" / "last.json").stat().st_mtime_ns for s in STAGES}


def test_the_tower_is_the_captioners_vit(chain):
    out, _, _ = chain
    captioner, stage1 = lingvis.load(out / "captioner"), lingvis.load(out / "stage1")
    assert stage1.vision.config.grid == captioner.encoder.config.grid == 8  # captioner-tiny: 64px, 8 x 8 patches
    assert torch.equal(stage1.vision.patch_embed.weight, captioner.encoder.patch_embed.weight)


def test_clip_tower(chain, tmp_path):
    """tower="clip": a CLIP trains on the captions and its image tower joins the same LM (reused here)."""
    out, plan, _ = chain
    for part in ("shapes", "lm"):
        shutil.copytree(out / part, tmp_path / part)
    log = train_chain(tmp_path, dataclasses.replace(plan, tower="clip", train_vision=False), reuse=True)
    assert set(log) >= {"clip", "stage1", "stage2"} and "lm" not in log and not (tmp_path / "captioner").exists()
    clip, stage1 = lingvis.load(tmp_path / "clip"), lingvis.load(tmp_path / "stage1")
    assert torch.equal(stage1.vision.patch_embed.weight, clip.vision.patch_embed.weight)
    with pytest.raises(ValueError, match="tower"):
        train_chain(tmp_path, dataclasses.replace(plan, tower="cnn"))


def test_dense_tower(chain, tmp_path):
    """tower="dense": a new ViT learns the scenes' ground truth per patch and is the tower of stage 1."""
    out, plan, _ = chain
    for part in ("shapes", "lm"):
        shutil.copytree(out / part, tmp_path / part)
    plan = dataclasses.replace(plan, tower="dense", dense=Stage(2, 4, 1e-3), dense_preset="vit-nano", dense_scenes=8,
                               train_vision=False)
    log = train_chain(tmp_path, plan, reuse=True)
    assert {"dense", "stage1", "stage2"} <= set(log) and "lm" not in log and not (tmp_path / "captioner").exists()
    dense, stage1 = lingvis.load(tmp_path / "dense"), lingvis.load(tmp_path / "stage1")
    assert dense.family == "vit" and torch.equal(stage1.vision.patch_embed.weight, dense.patch_embed.weight)
    assert json.loads((tmp_path / "dense" / "dense.json").read_text())["args"]["n_scenes"] == 8
    assert "dense" not in train_chain(tmp_path, plan, reuse=True)  # reuse keeps the tuned tower
    # dense_more: a second pass reads the first's tower (kept in dense_first) and becomes the tower
    more = dataclasses.replace(plan, dense_more=Stage(3, 4, 2e-3))
    shutil.rmtree(tmp_path / "dense")
    log = train_chain(tmp_path, more, reuse=True)
    assert log["dense"]["cpu_s"] >= 0 and log["dense_more"]["cpu_s"] >= 0 and "stage1" not in log
    second = json.loads((tmp_path / "dense" / "dense.json").read_text())["args"]
    assert second["tower"] == str(tmp_path / "dense_first") and second["steps"] == 3
    assert not torch.equal(lingvis.load(tmp_path / "dense").patch_embed.weight,
                           lingvis.load(tmp_path / "dense_first").patch_embed.weight)
    shutil.rmtree(tmp_path / "dense_first")  # the final tower alone (as when linked in) is kept with reuse
    assert not {"dense", "dense_more"} & set(train_chain(tmp_path, more, reuse=True))
    assert not (tmp_path / "dense_first").exists()
    with pytest.raises(ValueError, match="vision_feature_layer"):
        train_chain(tmp_path, dataclasses.replace(plan, vision_feature_layer=[0, -2]))


def test_tower_from_an_existing_run(chain, tmp_path):
    """tower_run: the tower comes from that run; no tower is trained."""
    out, plan, _ = chain
    for part in ("shapes", "lm"):
        shutil.copytree(out / part, tmp_path / part)
    log = train_chain(tmp_path, dataclasses.replace(plan, tower_run=str(out / "captioner"), train_vision=False),
                      reuse=True)
    assert "captioner" not in log and not (tmp_path / "captioner").exists() and log["stage1"]["steps"] == 2
    assert torch.equal(lingvis.load(tmp_path / "stage1").vision.patch_embed.weight,
                       lingvis.load(out / "captioner").encoder.patch_embed.weight)


@pytest.mark.parametrize("position", ["rowcol", "onehot"])
def test_image_token_layout_reaches_both_stages(chain, tmp_path, position):
    """spatial_merge / image_position: stage 1 builds the model with them and stage 2 keeps them."""
    out, plan, _ = chain
    for part in ("shapes", "lm"):
        shutil.copytree(out / part, tmp_path / part)
    plan = dataclasses.replace(plan, tower_run=str(out / "captioner"), train_vision=False, spatial_merge=2,
                               image_position=position)
    train_chain(tmp_path, plan, reuse=True)
    for stage in ("stage1", "stage2"):
        m = lingvis.load(tmp_path / stage)
        assert (m.config.spatial_merge, m.config.image_position, m.tokens_per_image) == (2, position, 16)


def test_split_words_reach_stage_two(chain, tmp_path):
    """split_words: stage 2 starts from the pair's rows split around their mean (stage 1's LM is frozen)."""
    from lingvis.recipes.split_words import word_id

    out, plan, _ = chain
    for part in ("shapes", "lm", "stage1"):
        shutil.copytree(out / part, tmp_path / part)
    # the tiny BPE has no one-token " left": two one-character words stand in for the pair
    plan = dataclasses.replace(plan, tower_run=str(out / "captioner"), train_vision=False, split_words="a/e",
                               stage2=Stage(2, 4, 1e-6))
    train_chain(tmp_path, plan, reuse=True)
    tok = lingvis.load_tokenizer(tmp_path / "stage2")
    ia, ib = word_id(tok, "a"), word_id(tok, "e")
    before, after = (lingvis.load(tmp_path / s).llm.wte.weight for s in ("stage1", "stage2"))
    assert torch.cosine_similarity(after[ia], after[ib], dim=0).item() == pytest.approx(0.406, abs=1e-2)
    assert torch.allclose(after[ia] + after[ib], before[ia] + before[ib], atol=1e-4)
    # split_words_stage="stage1": stage 1 splits (its LM frozen) and stage 2 does not split again
    again = tmp_path / "again"
    for part in ("shapes", "lm"):
        shutil.copytree(out / part, again / part)
    train_chain(again, dataclasses.replace(plan, split_words_stage="stage1"), reuse=True)
    s1, s2 = (lingvis.load(again / s) for s in ("stage1", "stage2"))
    assert torch.cosine_similarity(s1.llm.wte.weight[ia], s1.llm.wte.weight[ib], dim=0).item() == \
        pytest.approx(0.406, abs=1e-3)
    assert torch.allclose(s2.llm.wte.weight[ia], s1.llm.wte.weight[ia], atol=1e-4)  # lr 1e-6: no second split
    with pytest.raises(ValueError, match="split_words_stage"):
        train_chain(tmp_path / "bad", dataclasses.replace(plan, split_words_stage="both"))


def test_stage1_on_region_captions(chain, tmp_path):
    """stage1_captions="regions": stage 1 trains on one region caption per image (its own files), stage 2 follows."""
    out, plan, _ = chain
    for part in ("shapes", "lm"):
        shutil.copytree(out / part, tmp_path / part)
    for split in ("train", "val"):  # the split's own captions emptied: stage 1 fails if it reads them
        path = tmp_path / "shapes" / f"captions_{split}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "annotations": []}))
    plan = dataclasses.replace(plan, tower_run=str(out / "captioner"), train_vision=False, stage1_captions="regions")
    log = train_chain(tmp_path, plan, reuse=True)
    assert log["stage1"]["steps"] == 2 and log["stage2"]["steps"] == 2
    caps = json.loads((tmp_path / "shapes" / "captions_train_regions.json").read_text())["annotations"]
    assert len(caps) == plan.n_train and all(any(p in c["caption"] for p in REGION_PHRASES.values()) for c in caps)
    again = tmp_path / "again"  # the same with the split's (emptied) captions: the check above can fail
    for part in ("shapes", "lm"):
        shutil.copytree(tmp_path / part, again / part)
    with pytest.raises(ValueError, match=r"no \(image, caption\) records"):
        train_chain(again, dataclasses.replace(plan, stage1_captions="all"), reuse=True)


def test_stage1_captions_must_be_known(chain, tmp_path):
    _, plan, _ = chain
    with pytest.raises(ValueError, match="stage1_captions"):
        train_chain(tmp_path, dataclasses.replace(plan, stage1_captions="every"))
