"""Fusion model: shapes, heads, gradients, padding invariance, checkpoints."""
import pytest
import torch

import lingvis
from lingvis.models import build, preset_config
from lingvis.models.fusion import FusionConfig, FusionModel

ANSWERS = ["yes", "no", "red", "1"]


def tiny(**kw):
    torch.manual_seed(0)
    return build("fusion-tiny", **kw).eval()


def inputs(B=2, T=6, H=32, W=32):
    torch.manual_seed(1)
    return torch.randint(5, 128, (B, T)), torch.randn(B, 3, H, W)


CNN = {"stem_width": 8, "stem_stride": 2, "widths": [8, 16], "depths": [1, 1]}  # stride 4 -> 8x8 grid


@pytest.mark.parametrize("encoder", ["patch", "cnn"])
def test_forward_shapes_and_heads(encoder):
    extra = {"cnn": CNN} if encoder == "cnn" else {}
    m = tiny(image_encoder=encoder, mlm_head=True, itm_head=True, mif_head=True, answers=ANSWERS, **extra)
    ids, px = inputs()
    out = m(ids, px, with_image_features=True)
    n_grid = 16 if encoder == "patch" else 64  # 32/8 = 4 -> 16 cells; 32/4 = 8 -> 64 cells
    assert out.hidden.shape == (2, 6 + 1 + n_grid, 32)
    assert out.pooled.shape == (2, 32)
    assert m.mlm_logits(out).shape == (2, 6, 128)
    assert m.itm_logits(out).shape == (2, 2)
    assert m.vqa_logits(out).shape == (2, len(ANSWERS))
    feat = 3 * 8 * 8 if encoder == "patch" else 16
    assert out.image_features.shape == (2, n_grid, feat)
    assert m.mif_predictions(out).shape == (2, n_grid, feat)


@pytest.mark.parametrize("encoder", ["patch", "cnn"])
def test_every_parameter_gets_a_gradient(encoder):
    extra = {"cnn": CNN} if encoder == "cnn" else {}
    m = tiny(mlm_head=True, itm_head=True, mif_head=True, itc_head=True, answers=ANSWERS, image_encoder=encoder,
             **extra).train()
    n_grid = 16 if encoder == "patch" else 64
    ids, px = inputs()
    masked = torch.zeros(2, n_grid, dtype=torch.bool)
    masked[:, 3] = True
    out = m(ids, px, image_token_mask=masked, with_image_features=True)
    txt, img = m.contrastive_embeddings(ids, px)
    loss = m.mlm_logits(out).mean() + m.itm_logits(out).mean() + m.vqa_logits(out).mean() \
        + (m.mif_predictions(out) - out.image_features).pow(2).mean() + (m.logit_scale * img @ txt.T).mean()
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_contrastive_embeddings_are_unimodal_passes():
    m = tiny(itc_head=True, itc_dim=16)
    ids, px = inputs()
    txt, img = m.contrastive_embeddings(ids, px)
    assert txt.shape == img.shape == (2, 16)
    assert torch.allclose(txt.norm(dim=-1), torch.ones(2), atol=1e-5)
    txt2, img2 = m.contrastive_embeddings(ids, -px)  # the text side never sees the image
    assert torch.equal(txt, txt2) and not torch.allclose(img, img2)


def test_mlm_decoder_is_tied_to_word_embeddings():
    m = tiny(mlm_head=True)
    assert m.mlm.decoder.weight is m.text.word_emb.weight


def test_text_padding_does_not_change_outputs():
    m = tiny(answers=ANSWERS)
    ids, px = inputs(B=1)
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    with torch.no_grad():
        a = m.vqa_logits(m(ids, px))
        b = m.vqa_logits(m(padded, px, attention_mask=mask))
    assert torch.allclose(a, b, atol=1e-5)


def test_image_padding_with_pixel_mask_does_not_change_outputs():
    m = tiny(answers=ANSWERS)
    ids, px = inputs(B=1)
    big = torch.zeros(1, 3, 48, 40)
    big[..., :32, :32] = px
    pm = torch.zeros(1, 48, 40, dtype=torch.long)
    pm[:, :32, :32] = 1
    with torch.no_grad():
        a = m.vqa_logits(m(ids, px))
        b = m.vqa_logits(m(ids, big, pixel_mask=pm))
        c = m.vqa_logits(m(ids, big))  # without the mask the padding is content
    assert torch.allclose(a, b, atol=1e-5)
    assert (a - c).abs().max() > 1e-4


def test_text_mean_pooling_ignores_padding():
    m = tiny(answers=ANSWERS, pool="text_mean")
    ids, px = inputs(B=1)
    padded = torch.cat([ids, torch.full((1, 3), 7)], dim=1)
    with torch.no_grad():
        a = m.vqa_logits(m(ids, px))
        b = m.vqa_logits(m(padded, px, attention_mask=torch.tensor([[1] * 6 + [0] * 3])))
        c = m.vqa_logits(m(padded, px))
    assert torch.allclose(a, b, atol=1e-5) and (a - c).abs().max() > 1e-5
    with pytest.raises(ValueError, match="pool must be"):
        tiny(pool="max")


def test_image_changes_the_answer():
    m = tiny(answers=ANSWERS)
    ids, px = inputs(B=1)
    with torch.no_grad():
        a = m.vqa_logits(m(ids, px))
        b = m.vqa_logits(m(ids, -px))
    assert (a - b).abs().max() > 1e-4


def test_missing_head_and_bad_inputs_have_clear_errors():
    m = tiny()
    ids, px = inputs()
    out = m(ids, px)
    with pytest.raises(ValueError, match="no VQA classifier head"):
        m.vqa_logits(out)
    with pytest.raises(ValueError, match="no image mask token"):
        m(ids, px, image_token_mask=torch.zeros(2, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="exceeds the model's max_text_len 24"):
        m(torch.zeros(2, 30, dtype=torch.long), px)
    with pytest.raises(ValueError, match="batch of 2 texts but 1 images"):
        m(ids, px[:1])
    with pytest.raises(ValueError, match="image_encoder must be"):
        build("fusion-tiny", image_encoder="rcnn")


def test_presets():
    fam, cfg = preset_config("vilt-b-32")
    assert fam == "fusion" and (cfg.dim, cfg.n_layer, cfg.patch_size, cfg.image_size) == (768, 12, 32, 384)
    assert cfg.grid == 12 and cfg.prenorm and cfg.norm_eps == 1e-12
    small = preset_config("fusion-small-grid")[1]
    assert small.grid == 4 and small.cnn["image_size"] == 64 and small.stride == 16
    regions = preset_config("fusion-small")[1]
    assert regions.image_encoder == "regions" and regions.regions["max_regions"] == 6
    assert regions.image_token_count(64, 64) == 6 and not regions.prenorm and regions.pool == "text_mean"
    assert regions.vqa_readout == "regions" and FusionConfig().vqa_readout == "pooled"  # ViLT layout by default


def test_native_checkpoint_roundtrip_keeps_answers(tmp_path):
    m = tiny(image_encoder="cnn", cnn=CNN, mlm_head=True, itm_head=True, answers=ANSWERS)
    lingvis.save(m, tmp_path / "m")  # no HF twin for a CNN image encoder: native format
    back = lingvis.load(tmp_path / "m")
    assert isinstance(back, FusionModel) and back.config.answers == ANSWERS
    m.eval()
    ids, px = inputs()
    with torch.no_grad():
        assert torch.equal(m.itm_logits(m(ids, px)), back.itm_logits(back(ids, px)))
