"""VideoMAE and TimeSformer parity against transformers on tiny random configs with odd shapes (pixel_values
(B, T, C, H, W)): logits / hidden states max abs diff <= 1e-4 through the production converter, and export."""
import pytest
import torch

import lingvis
from lingvis.io import CheckpointError
from lingvis.models.video import VideoTransformer

transformers = pytest.importorskip("transformers")


def _randomise(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias") or "embeddings" in name or "cls_token" in name:
                p.copy_(0.3 * torch.randn_like(p))
    return model.eval()


def videomae(classify=True, **kw):
    torch.manual_seed(0)
    cfg = transformers.VideoMAEConfig(image_size=24, patch_size=6, num_channels=3, num_frames=6, tubelet_size=2,
                                      hidden_size=36, num_hidden_layers=2, num_attention_heads=3,
                                      intermediate_size=52, num_labels=5, **kw)
    cls = transformers.VideoMAEForVideoClassification if classify else transformers.VideoMAEModel
    return _randomise(cls(cfg))


def timesformer(classify=True):
    torch.manual_seed(0)
    cfg = transformers.TimesformerConfig(image_size=24, patch_size=6, num_channels=3, num_frames=5, hidden_size=36,
                                         num_hidden_layers=2, num_attention_heads=3, intermediate_size=52,
                                         num_labels=4)
    cls = transformers.TimesformerForVideoClassification if classify else transformers.TimesformerModel
    return _randomise(cls(cfg))


def clip(frames, B=2):
    return torch.randn(B, frames, 3, 24, 24, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("make,frames", [(videomae, 6), (timesformer, 5)])
def test_classifier_logits_match(make, frames, tmp_path):
    hf = make()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = lingvis.load(tmp_path / "hf")
    assert isinstance(ours, VideoTransformer) and ours.config.labels == [f"LABEL_{i}" for i in
                                                                         range(hf.config.num_labels)]
    x = clip(frames)
    with torch.no_grad():
        want = hf(pixel_values=x).logits
        got = ours(x)
    assert (got - want).abs().max() <= 1e-4
    top = ours.predict(x, top_k=2)
    assert [t[0][0] for t in top] == [ours.config.labels[i] for i in want.argmax(-1).tolist()]


@pytest.mark.parametrize("make,frames", [(videomae, 6), (timesformer, 5)])
def test_base_model_hidden_states_match(make, frames, tmp_path):
    hf = make(classify=False)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = lingvis.load(tmp_path / "hf")
    x = clip(frames)
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
        got = ours.forward_features(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-4


@pytest.mark.parametrize("make,frames", [(videomae, 6), (timesformer, 5)])
def test_export_loads_in_transformers_with_the_same_logits(make, frames, tmp_path):
    hf = make()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = lingvis.load(tmp_path / "hf")
    lingvis.save(ours, tmp_path / "out")
    back = type(hf).from_pretrained(tmp_path / "out").eval()
    x = clip(frames)
    with torch.no_grad():
        assert (back(pixel_values=x).logits - hf(pixel_values=x).logits).abs().max() <= 1e-5


def test_wrong_clip_shape_and_unsupported_config_are_named(tmp_path):
    hf = videomae(use_mean_pooling=False)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    with pytest.raises(CheckpointError, match="use_mean_pooling"):
        lingvis.load(tmp_path / "hf")
    model = lingvis.build("video-tiny")
    with pytest.raises(ValueError, match="8 frames of 32x32"):
        model(torch.randn(1, 6, 3, 32, 32))
