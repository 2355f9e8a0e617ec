"""The LLaVA recipe on the one trainer, tiny: stage 1 trains only the projector (tower and LM unchanged),
stage 2 the projector and LM (or LoRA adapters on the LM only), exact resume, and data from files
(COCO captions, LLaVA JSON) as well as the built-in shapes."""
import string

import pytest
import torch

import lingvis
from lingvis.data.shapes import generate_shapes
from lingvis.recipes.llava import LlavaArgs, finetune_llava, pretrain_llava
from lingvis.tokenizers import train_char
from lingvis.train.config import TrainConfig


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("llava")
    torch.manual_seed(0)
    tok = train_char(string.printable)
    lm = lingvis.build("gpt-nano", vocab_size=tok.vocab_size, block_size=256)
    lingvis.save(lm, root / "lm", tokenizer=tok)
    lingvis.save(lingvis.build("clip-nano"), root / "clip")
    return root


def cfg(steps=3, **kw):
    return TrainConfig(max_steps=steps, batch_size=4, lr=1e-2, warmup_steps=1, eval_every=steps, eval_batches=1,
                       log_every=1, progress=False, device="cpu", **kw)


def state(path, prefix):
    return {k: v for k, v in lingvis.load(path).state_dict().items() if k.startswith(prefix)}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def stage1(parts):
    args = LlavaArgs(out=str(parts / "stage1"), vision=str(parts / "clip"), llm=str(parts / "lm"), n_train=8, n_val=2)
    summary = pretrain_llava(args, cfg())
    return parts / "stage1", summary


def test_stage_one_trains_only_the_projector(parts, stage1):
    run, summary = stage1
    model, tok = lingvis.load(run), lingvis.load_tokenizer(run)
    assert model.family == "llava" and tok.token_to_id("<image>") == model.config.image_token_id
    assert summary["trainable_parameters"] == sum(p.numel() for p in model.projector.parameters())
    clip, lm = lingvis.load(parts / "clip"), lingvis.load(parts / "lm")
    assert same({k: v for k, v in model.vision.state_dict().items()}, clip.vision.state_dict())
    grown = model.llm.state_dict()
    for k, v in lm.state_dict().items():  # the LM gained one row (<image>) and is otherwise unchanged
        assert torch.equal(grown[k][:v.shape[0]], v)
    assert (run / "metrics.jsonl").is_file() and (run / "loss.png").is_file()


def test_stage_two_trains_projector_and_lm(parts, stage1):
    run = parts / "stage2"
    summary = finetune_llava(LlavaArgs(out=str(run), model=str(stage1[0]), n_train=8, n_val=2), cfg())
    assert summary["step"] == 3 and summary["train_conversations"] >= 8
    assert same(state(run, "vision."), state(stage1[0], "vision."))
    assert not same(state(run, "llm."), state(stage1[0], "llm."))
    assert not same(state(run, "projector."), state(stage1[0], "projector."))


def test_lora_adapts_the_lm_only(parts, stage1):
    run = parts / "lora"
    finetune_llava(LlavaArgs(out=str(run), model=str(stage1[0]), n_train=8, n_val=2), cfg(lora_rank=4))
    from lingvis.api import resolve_checkpoint
    from lingvis.io import read_safetensors

    keys = read_safetensors(resolve_checkpoint(run) / "model.safetensors").keys()
    lora = [k for k in keys if ".lora_" in k]
    assert lora and all(k.startswith("llm.") for k in lora)
    assert same(state(run, "vision."), state(stage1[0], "vision."))
    assert not same(state(run, "projector."), state(stage1[0], "projector."))  # the projector trains too


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_train_vision_tunes_the_tower_in_stage_two(parts, stage1, lora_rank):
    run = parts / f"tower-{lora_rank}"
    summary = finetune_llava(LlavaArgs(out=str(run), model=str(stage1[0]), n_train=8, n_val=2, train_vision=True),
                             cfg(lora_rank=lora_rank))
    before, after = state(stage1[0], "vision."), state(run, "vision.")
    unread = set(lingvis.load(run).unused_parameters())  # blocks past the feature layer: never read, unchanged
    assert all(torch.equal(before[k], after[k]) for k in unread)
    assert not torch.equal(before["vision.patch_embed.weight"], after["vision.patch_embed.weight"])
    assert not torch.equal(before["vision.pos_embed"], after["vision.pos_embed"])
    assert summary["trainable_parameters"] > sum(v.numel() for v in before.values()) // 2
    assert not same(state(run, "projector."), state(stage1[0], "projector."))


def test_resume_is_exact(parts, stage1):
    args = lambda out: LlavaArgs(out=str(parts / out), model=str(stage1[0]), n_train=8, n_val=2)  # noqa: E731
    c = cfg(4).__dict__
    finetune_llava(args("straight"), TrainConfig(**{**c, "eval_every": 2}))
    finetune_llava(args("resumed"), TrainConfig(**{**c, "eval_every": 2, "max_steps": 2}))
    finetune_llava(args("resumed"), TrainConfig(**{**c, "eval_every": 2}), resume=True)
    a, b = lingvis.load(parts / "straight" / "checkpoints" / "step-0000004"), \
        lingvis.load(parts / "resumed" / "checkpoints" / "step-0000004")
    assert same(a.state_dict(), b.state_dict())


def test_data_from_files(parts, tmp_path):
    data = tmp_path / "shapes"
    generate_shapes(data, n_train=6, n_val=2, n_test=1, n_test_unseen=0, image_size=32)
    s1 = pretrain_llava(LlavaArgs(out=str(tmp_path / "s1"), data=str(data / "captions_train.json"),
                                  val_data=str(data / "captions_val.json"), vision=str(parts / "clip"),
                                  llm=str(parts / "lm")), cfg(2))
    assert s1["train_conversations"] >= 6 * 4  # every caption of every image
    s2 = finetune_llava(LlavaArgs(out=str(tmp_path / "s2"), data=str(data / "llava_train.json"),
                                  model=str(tmp_path / "s1")), cfg(2))
    assert s2["val_conversations"] >= 1 and s2["step"] == 2


def test_missing_inputs_are_named(tmp_path, parts):
    with pytest.raises(ValueError, match="--vision"):
        pretrain_llava(LlavaArgs(out=str(tmp_path / "x")), cfg())
    with pytest.raises(ValueError, match="not llava"):
        finetune_llava(LlavaArgs(out=str(tmp_path / "y"), model=str(parts / "lm")), cfg())


def test_stage_one_from_hugging_face_folders(parts, tmp_path):
    """--vision an HF CLIP folder, --llm an HF Llama folder (GQA) whose tokenizer has no <image>: the tower and
    the LM keep their weights, the vocabulary grows by the placeholder, only the projector trains."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    clip_cfg = transformers.CLIPConfig(
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=16), projection_dim=16)
    transformers.CLIPModel(clip_cfg).save_pretrained(tmp_path / "hf_clip", safe_serialization=True)
    tok = train_char(string.printable)
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=tok.vocab_size, hidden_size=40, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False))
    llama.save_pretrained(tmp_path / "hf_llama", safe_serialization=True)
    tok.save(tmp_path / "hf_llama")
    summary = pretrain_llava(LlavaArgs(out=str(tmp_path / "s1"), vision=str(tmp_path / "hf_clip"),
                                       llm=str(tmp_path / "hf_llama"), n_train=8, n_val=2), cfg())
    assert summary["step"] == 3 and summary["trainable_parameters"] < summary["parameters"] / 2
    model = lingvis.load(tmp_path / "s1")
    hf_tower = lingvis.load(tmp_path / "hf_clip").vision
    assert same(state(tmp_path / "s1", "vision."), {"vision." + k: v for k, v in hf_tower.state_dict().items()})
    lm, hf_lm = model.llm.state_dict(), lingvis.load(tmp_path / "hf_llama").state_dict()
    image_id = lingvis.load_tokenizer(tmp_path / "s1").token_to_id("<image>")
    assert image_id == tok.vocab_size and model.config.image_token_id == image_id
    assert model.llm.config.vocab_size == tok.vocab_size + 1 and model.llm.config.n_kv_head == 2
    assert all(torch.equal(lm[k][:tok.vocab_size] if k in ("wte.weight", "lm_head.weight") else lm[k], hf_lm[k])
               for k in hf_lm)


def test_stage_one_takes_the_tower_of_a_captioner_run(parts, tmp_path):
    """--vision a lingvis captioner run: its ViT encoder (trained on captions) becomes the frozen tower, as it
    was; a captioner with a CNN encoder is refused by name."""
    torch.manual_seed(0)
    cap = lingvis.build("captioner-nano", decoder={"vocab_size": 64})
    lingvis.save(cap, tmp_path / "cap")
    summary = pretrain_llava(LlavaArgs(out=str(tmp_path / "s1"), vision=str(tmp_path / "cap"), llm=str(parts / "lm"),
                                       n_train=8, n_val=2), cfg(2))
    assert summary["step"] == 2
    model = lingvis.load(tmp_path / "s1")
    assert model.config.vision["image_size"] == cap.encoder.config.image_size
    assert same(state(tmp_path / "s1", "vision."), {"vision." + k: v for k, v in cap.encoder.state_dict().items()})
    lingvis.save(lingvis.build("captioner-cnn-tiny", decoder={"vocab_size": 64}), tmp_path / "cnn")
    with pytest.raises(ValueError, match="not a ViT"):
        pretrain_llava(LlavaArgs(out=str(tmp_path / "s2"), vision=str(tmp_path / "cnn"), llm=str(parts / "lm"),
                                 n_train=8, n_val=2), cfg(2))


def test_stage_two_splits_word_pairs_first(parts, stage1):
    run = parts / "split"
    before = lingvis.load(stage1[0]).llm.wte.weight
    slow = TrainConfig(max_steps=2, batch_size=4, lr=1e-7, warmup_steps=1, eval_every=2, eval_batches=1,
                       progress=False, device="cpu")  # the saved rows stay where the split put them
    summary = finetune_llava(LlavaArgs(out=str(run), model=str(stage1[0]), n_train=8, n_val=2, split_words="a/b"),
                             slow)
    ia, ib = summary["split_words"][0]["ids"]
    assert summary["split_words"][0]["cos_after"] == pytest.approx(0.406, abs=1e-3)
    after = lingvis.load(run).llm.wte.weight
    assert torch.cosine_similarity(after[ia], after[ib], dim=0).item() == pytest.approx(0.406, abs=1e-2)
    assert torch.allclose(after[ia] + after[ib], before[ia] + before[ib], atol=1e-4)  # the pair's mean kept
    with pytest.raises(ValueError, match="only one-token words"):
        finetune_llava(LlavaArgs(out=str(parts / "bad"), model=str(stage1[0]), n_train=8, n_val=2,
                                 split_words="left/right"), cfg())


def test_stage_one_splits_word_pairs_and_keeps_them_split(parts):
    """In stage 1 the LM is frozen: the split rows are saved exactly as split_word_pairs set them."""
    from lingvis.recipes.split_words import split_word_pairs

    args = LlavaArgs(out=str(parts / "stage1_split"), vision=str(parts / "clip"), llm=str(parts / "lm"), n_train=8,
                     n_val=2, split_words="a/b")
    summary = pretrain_llava(args, cfg())
    ia, ib = summary["split_words"][0]["ids"]
    lm = lingvis.load(parts / "lm")
    split_word_pairs(lm, lingvis.load_tokenizer(parts / "lm"), [("a", "b")], seed=cfg().seed)  # the same split
    got = lingvis.load(parts / "stage1_split").llm.wte.weight
    assert torch.equal(got[ia], lm.wte.weight[ia]) and torch.equal(got[ib], lm.wte.weight[ib])
