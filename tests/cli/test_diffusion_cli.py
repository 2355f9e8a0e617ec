"""`lingvis pretrain diffusion`, `generate-image`, `eval text-to-image` end to end on tiny data, and the
diffusion task's pieces (EMA once per step, caption dropout, seeded evaluation)."""
import json

import pytest
import torch
from PIL import Image

import lingvis
from lingvis.cli import main
from lingvis.tasks.diffusion import DiffusionTask

TRAIN = ["--max-steps", "4", "--batch-size", "4", "--eval-every", "2", "--eval-batches", "1", "--warmup-steps", "1",
         "--no-progress", "--sample-steps", "2", "--preset", "t2i-nano"]


def lines(capsys):
    """The JSON documents printed (indented) one after another."""
    text, dec, out, i = capsys.readouterr().out, json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) >= 0:
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i")
    assert main(["data", "shapes", "--out", str(root / "shapes"), "--n-train", "24", "--n-val", "8", "--n-test", "0",
                 "--image-size", "16"]) == 0
    data = ["--data", str(root / "shapes" / "captions_train.json"), "--val-data",
            str(root / "shapes" / "captions_val.json")]
    assert main(["pretrain", "diffusion", *data, "--out", str(root / "run"), "--objective", "v_prediction",
                 "--sample-prompt", "a small red circle", "--sample-prompt", "two shapes: a blue star and a red cross",
                 *TRAIN]) == 0
    return root, data


def test_pretrain_writes_a_loadable_model_with_ema_and_samples(run):
    root, _ = run
    model = lingvis.load(root / "run")
    assert model.family == "text_to_image" and model.vae is None
    assert model.config.scheduler["prediction_type"] == "v_prediction"
    assert int(model.ema_updates) in (2, 4)  # the best checkpoint (step 2 or 4): one EMA update per step
    assert any(not torch.equal(a, b) for a, b in zip(model.ema.parameters(), model.denoiser.parameters()))
    grids = sorted((root / "run" / "samples").glob("step-*.png"))
    assert [g.name for g in grids] == ["step-0000002.png", "step-0000004.png"]
    assert Image.open(grids[0]).size == (4 * 16 + 3 * 2, 2 * 16 + 2)  # 4 images per prompt, one row per prompt
    assert (root / "run" / "loss.png").is_file()
    tc = json.loads((root / "run" / "train_config.json").read_text())
    assert (tc["beta2"], tc["weight_decay"], tc["warmup_steps"]) == (0.99, 0.0, 1)  # the recipe's optimizer


def test_timesteps_flag_is_checked(run, capsys):
    root, data = run
    with pytest.raises(SystemExit):
        main(["pretrain", "diffusion", *data, "--out", str(root / "bad"), "--timesteps", "cosine", *TRAIN])
    assert "--timesteps" in capsys.readouterr().err


def test_generate_image_is_seeded(run, tmp_path, capsys):
    root, _ = run
    args = ["generate-image", "--model", str(root / "run"), "a small red circle", "--steps", "3", "--guidance", "4",
            "--n", "2", "--no-progress"]
    assert main([*args, "--seed", "0", "--out", str(tmp_path / "a.png")]) == 0
    assert main([*args, "--seed", "0", "--out", str(tmp_path / "b.png")]) == 0
    assert main([*args, "--seed", "1", "--out", str(tmp_path / "c.png"), "--scheduler", "euler"]) == 0
    out = lines(capsys)
    assert out[0]["images"] == 2 and out[0]["size"] == [16, 16]
    a, b, c = (Image.open(tmp_path / f"{x}.png").tobytes() for x in "abc")
    assert a == b and a != c


def test_resume_continues_the_run(run, capsys):
    root, data = run
    assert main(["pretrain", "diffusion", *data, "--out", str(root / "run"), "--objective", "v_prediction",
                 *TRAIN[:1], "6", *TRAIN[2:], "--resume"]) == 0
    rows = [json.loads(x) for x in (root / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == 6
    assert int(lingvis.load(root / "run" / "checkpoints" / "step-0000006").ema_updates) == 6


def test_eval_text_to_image_cli(run, tmp_path, capsys):
    root, _ = run
    with pytest.raises(RuntimeError, match="detector"):  # 16 px renders are too small to score reliably
        main(["eval", "text-to-image", "--model", str(root / "run"), "--per-category", "1", "--steps", "1"])


def test_bad_flags_are_named(run, capsys):
    root, _ = run
    assert main(["generate-image", "--model", str(root / "run"), "x", "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err
    assert main(["generate-image", "--model", str(root / "run"), "x", "--guidance-below", "2"]) == 2
    assert "guidance_below" in capsys.readouterr().err
    assert main(["generate-image", "--model", str(root / "shapes"), "x"]) == 2


def test_task_updates_ema_once_per_step_and_drops_captions():
    model = lingvis.build("t2i-nano").train()
    task = DiffusionTask(lambda texts: (torch.ones(len(texts), 4, dtype=torch.long),
                                        torch.ones(len(texts), 4, dtype=torch.long)),
                         model.config.scheduler, text_dropout=0.5, seed=0, grad_accum=2)
    samples = [{"image": torch.zeros(3, 16, 16), "text": f"caption {i}"} for i in range(200)]
    task.tokenize = lambda texts: (texts, None)
    dropped = sum(t == "" for t in task.collate(samples)["input_ids"])
    assert 70 < dropped < 130
    task.tokenize = lambda texts: (torch.ones(len(texts), 4, dtype=torch.long),
                                   torch.ones(len(texts), 4, dtype=torch.long))
    batch = task.collate(samples[:2])
    for _ in range(4):  # two optimizer steps of two micro-batches
        loss, _ = task.loss(model, batch)
        assert torch.isfinite(loss)
    assert int(model.ema_updates) == 2
    model.eval()
    a = task.evaluate(model, [batch])["loss"]
    assert a == task.evaluate(model, [batch])["loss"]  # seeded: the same noise and timesteps each time


def test_latent_space_with_a_trained_autoencoder(run, tmp_path, capsys):
    root, data = run
    assert main(["pretrain", "vae", *data, "--out", str(tmp_path / "vae"), "--image-size", "16", "--max-steps", "2",
                 "--batch-size", "4", "--eval-every", "2", "--eval-batches", "1", "--warmup-steps", "1",
                 "--no-progress"]) == 0
    vae = lingvis.load(tmp_path / "vae")
    assert vae.family == "vae" and vae.config.sample_size == 16
    rows = [json.loads(x) for x in (tmp_path / "vae" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"][-1]
    assert val["scaling_factor"] == pytest.approx(vae.config.scaling_factor) and val["psnr"] > 0
    assert main(["pretrain", "diffusion", *data, "--out", str(tmp_path / "t2i"), "--vae", str(tmp_path / "vae"),
                 *TRAIN]) == 0
    model = lingvis.load(tmp_path / "t2i")
    assert model.vae is not None and model.latent_channels == 4 and model.image_size == 16
    assert torch.equal(model.vae.encoder.conv_in.weight, vae.encoder.conv_in.weight)  # frozen, as loaded
    assert main(["generate-image", "--model", str(tmp_path / "t2i"), "a red circle", "--steps", "2", "--n", "1",
                 "--out", str(tmp_path / "g.png"), "--no-progress"]) == 0
    assert Image.open(tmp_path / "g.png").size == (16, 16)
    with pytest.raises(ValueError, match="--vae"):
        from lingvis.recipes.diffusion import DiffusionPretrainArgs, make_model
        make_model(DiffusionPretrainArgs(out=str(tmp_path / "x"), preset="t2i-shapes-latent"), None)
