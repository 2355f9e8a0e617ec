"""Video families: per-frame encoder + temporal head, video classifier, CLIP4Clip-style video CLIP."""
import dataclasses

import pytest
import torch

import lingvis
from lingvis.models import registry
from lingvis.models.video_clip import VideoCLIP
from lingvis.models.video_temporal import TemporalMixer

VIDEO_PRESETS = ["video-frames-nano", "video-classifier-nano", "video-clip-nano"]
NANO_CLIP = {**registry.PRESETS["clip-nano"][1], "eos_token_id": 3}  # the recipes take eos from the tokenizer


def _build(name, **kw):
    return registry.build(name, clip=NANO_CLIP, **kw) if name == "video-clip-nano" else registry.build(name, **kw)


def _video(B=2, T=4, size=32, seed=0):
    return torch.randn(B, T, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _randomise(module, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("name", VIDEO_PRESETS)
def test_forward_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = _build(name).train()
    video = _video()
    if name == "video-clip-nano":
        ids = torch.randint(0, 64, (2, 16))
        out = model(video, ids, torch.ones_like(ids))
        assert out.shape == (2, 2)
    else:
        out = model(video)
        assert out.shape == (2, model.out_dim if name == "video-frames-nano" else 2)
    _randomise(model)  # zero-initialised projections/heads would stop gradients to what lies before them
    out = model(video, ids, torch.ones_like(ids)) if name == "video-clip-nano" else model(video)
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing


def test_a_new_temporal_transformer_starts_as_mean_pooling_and_learns_order():
    frames = torch.randn(3, 5, 16)
    mixer = TemporalMixer(16, depth=2, heads=4, max_frames=8)
    assert torch.equal(mixer(frames), frames)  # zero output projections: exactly the input
    assert torch.equal(TemporalMixer(16, mode="mean")(frames), frames)
    _randomise(mixer)
    pooled = mixer(frames).mean(1)
    assert not torch.allclose(pooled, mixer(frames.flip(1)).mean(1), atol=1e-3)  # order now matters
    with pytest.raises(ValueError, match="max_frames=8"):
        mixer(torch.randn(1, 9, 16))
    with pytest.raises(ValueError, match="not divisible by temporal_heads 5"):
        TemporalMixer(16, heads=5)


def test_mean_pooling_baseline_is_blind_to_order():
    model = registry.build("video-classifier-nano", backbone=dict(frame=dict(image_size=32, patch_size=8, dim=32,
                                                                              depth=1, heads=4, mlp_hidden=64),
                                                                   temporal="mean"))
    _randomise(model)
    model.eval()
    video = _video()
    assert torch.allclose(model(video), model(video.flip(1)), atol=1e-5)
    seq = registry.build("video-classifier-nano")
    _randomise(seq)
    seq.eval()
    assert not torch.allclose(seq(video), seq(video.flip(1)), atol=1e-3)


def test_classifier_averages_clips_and_names_labels():
    model = registry.build("video-classifier-nano", labels=["left", "right", "up"]).eval()
    _randomise(model)
    clips = _video(B=6).view(2, 3, 4, 3, 32, 32)  # (B, K, T, C, H, W)
    probs = model.probabilities(clips)
    each = model(clips.flatten(0, 1)).softmax(-1).view(2, 3, 3).mean(1)
    assert torch.allclose(probs, each, atol=1e-6) and torch.allclose(probs.sum(-1), torch.ones(2))
    top = model.predict(clips, top_k=5)
    assert len(top[0]) == 3 and {lab for lab, _ in top[0]} == {"left", "right", "up"}
    assert top[0][0][1] >= top[0][1][1]
    with pytest.raises(ValueError, match=r"expects video \(B, T, C, H, W\)"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="'vit' is not a video backbone"):
        registry.build("video-classifier-nano", backbone_family="vit",
                       backbone=dict(image_size=32, patch_size=8, dim=32, depth=1, heads=4, mlp_hidden=64))


def test_video_clip_from_a_lingvis_clip_and_save_load(tmp_path):
    torch.manual_seed(0)
    clip = registry.build("clip-nano", eos_token_id=3).eval()
    _randomise(clip)
    model = VideoCLIP.from_clip(clip, temporal="mean", temporal_heads=4, max_frames=8).eval()
    ids = torch.randint(0, 64, (3, 16))
    assert torch.allclose(model.encode_text(ids), clip.encode_text(ids))
    one = _video(B=3, T=1)
    assert torch.allclose(model.encode_video(one), clip.encode_image(one[:, 0]), atol=1e-6)
    seq = VideoCLIP.from_clip(clip, temporal_depth=1, temporal_heads=4, max_frames=8).eval()
    _randomise(seq.temporal)
    video = _video(B=3)
    lingvis.save(seq, tmp_path / "vclip")
    back = lingvis.load(tmp_path / "vclip")
    assert back.family == "video_clip" and back.config == seq.config
    assert torch.allclose(back.encode_video(video), seq.encode_video(video), atol=1e-6)
    assert seq(video, ids).shape == (3, 3)
    with pytest.raises(ValueError, match="needs a CLIP model"):
        VideoCLIP.from_clip(registry.build("vit-nano"))
    with pytest.raises(ValueError, match="projection_dim 16.*temporal_heads 3"):
        VideoCLIP.from_clip(clip, temporal_heads=3)


def test_video_clip_frame_differences_show_motion_direction():
    """frame_input 'rgb+diff': the tower gets [frame, frame - previous frame] (6 channels; zero difference for the
    first frame and for a still image); a frozen clip and the same clip moving differ only through the difference."""
    torch.manual_seed(0)
    nano6 = {**NANO_CLIP, "vision": {**NANO_CLIP.get("vision", {}), "channels": 6}}
    model = registry.build("video-clip-nano", clip=nano6, frame_input="rgb+diff", temporal="mean").eval()
    video = _video(B=2, T=3)
    px = model.frame_pixels(video)  # (B, T, 6, H, W)
    assert px.shape == (2, 3, 6, 32, 32)
    assert torch.equal(px[:, :, :3], video) and not px[:, 0, 3:].any()
    assert torch.allclose(px[:, 2, 3:], video[:, 2] - video[:, 1])
    still = video[:, :1].expand(-1, 3, -1, -1, -1)
    assert torch.allclose(model.encode_video(still), model.encode_image(video[:, 0]), atol=1e-5)
    assert not torch.allclose(model.encode_video(video.flip(1)), model.encode_video(video), atol=1e-3)
    with pytest.raises(ValueError, match="frame_input 'rgb\\+diff' needs an image tower with 6 input channels"):
        registry.build("video-clip-nano", clip=NANO_CLIP, frame_input="rgb+diff")
    with pytest.raises(ValueError, match="frame_input must be one of"):
        registry.build("video-clip-nano", clip=NANO_CLIP, frame_input="flow")
    tiny = registry.build("video-clip-tiny")
    assert tiny.config.frame_input == "rgb+diff" and tiny.clip.vision.config.norm == "batchnorm"


def test_video_clip_from_a_hugging_face_clip_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=20),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=30, patch_size=6),
        projection_dim=24)
    ref = transformers.CLIPModel(cfg).eval()
    ref.save_pretrained(tmp_path / "hf")
    model = VideoCLIP.from_clip(lingvis.load(tmp_path / "hf"), temporal="mean", max_frames=4).eval()
    frames = torch.randn(2, 3, 3, 30, 30)
    with torch.no_grad():
        pooled = ref.vision_model(pixel_values=frames.flatten(0, 1)).pooler_output
        want = torch.nn.functional.normalize(ref.visual_projection(pooled), dim=-1)
        want = torch.nn.functional.normalize(want.view(2, 3, -1).mean(1), dim=-1)  # CLIP4Clip meanP
        got = model.encode_video(frames)
    assert (got - want).abs().max() < 1e-5
    assert dataclasses.asdict(model.clip.config)["projection_dim"] == 24


ST = dict(image_size=16, patch_size=8, frames=4, dim=24, depth=1, heads=3, mlp_hidden=32, tubelet=1,
          attention="divided", positions="learned", cls_token=True, pool="cls")


def test_classifier_takes_a_space_time_transformer_backbone():
    model = registry.build("video-classifier-nano", backbone_family="video_transformer", backbone=ST, num_frames=4,
                           labels=["a", "b", "c"])
    assert type(model.backbone).__name__ == "VideoTransformer" and model.image_config.image_size == 16
    _randomise(model.head)
    logits = model(_video(T=4, size=16))
    assert logits.shape == (2, 3)
    logits.sum().backward()
    assert model.backbone.patch_embed.weight.grad is not None
    clips = torch.stack([_video(T=4, size=16, seed=s) for s in range(3)], dim=1)  # (B, K, T, C, H, W)
    assert torch.allclose(model.probabilities(clips).sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="num_frames 6 does not match .* frames 4"):
        registry.build("video-classifier-nano", backbone_family="video_transformer", backbone=ST, num_frames=6)
    with pytest.raises(ValueError, match="own classification head"):
        registry.build("video-classifier-nano", backbone_family="video_transformer",
                       backbone={**ST, "labels": ["x", "y"]}, num_frames=4)
    with pytest.raises(ValueError, match="'vit' is not a video backbone"):
        registry.build("video-classifier-nano", backbone_family="vit", backbone={})


def test_finetune_starts_from_a_hugging_face_videomae_classifier(tmp_path):
    transformers = pytest.importorskip("transformers")
    from lingvis.recipes.video_classify import VideoClassifyArgs, make_model

    torch.manual_seed(0)
    hf = transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(
        image_size=16, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=24, num_hidden_layers=1,
        num_attention_heads=3, intermediate_size=32, num_labels=5)).eval()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    model = make_model(VideoClassifyArgs(data="unused", out="unused", model=str(tmp_path / "hf")), ["l", "r"]).eval()
    assert model.config.backbone_family == "video_transformer" and model.config.num_frames == 4
    assert model.config.backbone["labels"] is None and model.head.out_features == 2  # HF head dropped
    x = _video(T=4, size=16)
    with torch.no_grad():  # the backbone is the HF encoder: its pooled output feeds the HF head
        pooled = model.backbone(x)
        assert torch.allclose(hf.classifier(pooled), hf(pixel_values=x).logits, atol=1e-4)
