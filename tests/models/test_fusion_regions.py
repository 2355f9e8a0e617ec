"""Region tokens (VL-BERT style): the built-in proposer, RoI crops, region-token models and pretraining."""
import pytest
import torch

from lingvis.models import build
from lingvis.models.fusion_regions import RegionConfig, crop_regions, propose_boxes
from lingvis.tasks.fusion_pretrain import FusionPretrainTask
from lingvis.tokenizers.wordpiece import train_wordpiece

HALF = torch.tensor([0.5, 0.5, 0.5])
CNN = {"stem_width": 8, "stem_stride": 1, "widths": [8, 16], "depths": [1, 1]}


def scene(H=32, W=32):
    """White image (normalised with mean = std = 0.5) with a red 6x8 block and a blue 4x4 block."""
    img = torch.ones(3, H, W)
    img[:, 10:16, 20:28] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # red: rows 10-15, cols 20-27
    img[:, 2:6, 3:7] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]  # blue: rows 2-5, cols 3-6
    return (img - 0.5) / 0.5


def regions_model(regions: dict | None = None, **kw):
    torch.manual_seed(0)
    return build("fusion-tiny", image_encoder="regions", cnn=CNN, regions={"max_regions": 4, "crop": 8,
                 **(regions or {})}, **kw).eval()


class ConstantCNN(torch.nn.Module):
    """Stand-in crop encoder: the same features for every crop."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, crops):
        return torch.ones(len(crops), self.dim)


def test_proposals_find_each_blob_in_reading_order():
    boxes, mask = propose_boxes(scene()[None], None, RegionConfig(max_regions=4), HALF, HALF)
    assert mask.tolist() == [[1, 1, 0, 0]]
    expected = torch.tensor([[3, 2, 7, 6], [20, 10, 28, 16]]) / 32  # blue (left) first, then red
    assert torch.allclose(boxes[0, :2], expected)
    blank = torch.ones(1, 3, 32, 32)  # nothing but background
    assert propose_boxes(blank, None, RegionConfig(), HALF, HALF)[1].sum() == 0


def test_proposals_respect_max_regions_min_area_and_padding():
    img = scene()[None]
    boxes, mask = propose_boxes(img, None, RegionConfig(max_regions=1), HALF, HALF)
    assert mask.tolist() == [[1]] and torch.allclose(boxes[0, 0], torch.tensor([20, 10, 28, 16]) / 32)  # largest
    _, mask = propose_boxes(img, None, RegionConfig(min_area=20 / 1024), HALF, HALF)  # the 16-pixel blob is dropped
    assert mask.sum() == 1
    padded = torch.full((1, 3, 32, 48), -1.0)  # black padding to the right of the valid 32x32 image
    padded[..., :32] = img
    pixel_mask = torch.zeros(1, 32, 48, dtype=torch.long)
    pixel_mask[..., :32] = 1
    b2, m2 = propose_boxes(padded, pixel_mask, RegionConfig(max_regions=4), HALF, HALF)
    b1, m1 = propose_boxes(img, None, RegionConfig(max_regions=4), HALF, HALF)
    assert torch.equal(m1, m2) and torch.allclose(b1, b2)  # padding is neither background nor a region


def test_crop_is_centred_on_the_box():
    boxes, mask = propose_boxes(scene()[None], None, RegionConfig(max_regions=4), HALF, HALF)
    crops = crop_regions(scene()[None], None, boxes, mask, side=8, margin=0.0)  # (2, 3, 8, 8)
    assert crops.shape == (2, 3, 8, 8)
    centre = crops[:, :, 3:5, 3:5].mean((2, 3))  # normalised colour at each crop's centre
    assert torch.allclose(centre[0], torch.tensor([-1.0, -1.0, 1.0]), atol=1e-4)  # blue
    assert torch.allclose(centre[1], torch.tensor([1.0, -1.0, -1.0]), atol=1e-4)  # red


def test_region_model_shapes_heads_and_box_order_invariance():
    m = regions_model(mlm_head=True, itm_head=True, mif_head=True, answers=["yes", "no"], prenorm=False,
                      pool="text_mean")
    ids, px = torch.randint(5, 128, (2, 6)), torch.stack([scene(), scene().flip(-1)])
    out = m(ids, px, with_image_features=True)
    assert m.num_image_tokens == 5 and out.hidden.shape == (2, 6 + 5, 32)
    assert out.image_features.shape == (2, 4, 16) and m.mif_predictions(out).shape == (2, 4, 16)
    assert (out.image_features[:, 2:] == 0).all() and out.mask[:, -2:].sum() == 0  # 2 padding regions
    boxes, mask = propose_boxes(px, None, RegionConfig(**m.config.regions), HALF, HALF)
    with torch.no_grad():
        given = m.vqa_logits(m(ids, px, boxes=boxes, box_mask=mask))
        swapped = m.vqa_logits(m(ids, px, boxes=boxes[:, [1, 0, 2, 3]], box_mask=mask))
        proposed = m.vqa_logits(m(ids, px))
    assert torch.allclose(given, proposed, atol=1e-6)
    assert torch.allclose(given, swapped, atol=1e-5)  # regions are a set: only geometry says where
    with pytest.raises(ValueError, match="boxes must be"):
        m(ids, px, boxes=boxes[:1])


def test_region_model_pretraining_step_masks_regions():
    captions = ["a red square and a blue square", "a small blue square"]
    tok = train_wordpiece(captions * 3, 120, min_frequency=1)
    m = regions_model(vocab_size=tok.vocab_size, mlm_head=True, itm_head=True, mif_head=True).train()
    task = FusionPretrainTask(tok, 24, m.config.image_token_count, mlm_prob=0.5, mif_prob=0.5)
    batch = task.collate([{"pixel_values": scene(), "text": t, "image_key": i} for i, t in enumerate(captions)])
    assert batch["image_token_mask"].shape == (2, 4)
    loss, metrics = task.loss(m, batch)
    loss.backward()
    assert torch.isfinite(loss) and "mif_loss" in metrics
    assert m.image.stem.cnn.stem[0][0].weight.grad.abs().sum() > 0  # the crop CNN learns
    assert m.image.stem.geometry[0].weight.grad.abs().sum() > 0


def test_bad_region_config_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        RegionConfig(threshold=1.5)
    with pytest.raises(ValueError, match="image_encoder"):
        build("fusion-tiny", image_encoder="boxes")


def test_region_tokens_carry_box_geometry_whatever_the_content_scale():
    """Split norm (LXMERT): the same crop at two boxes gives tokens that differ by the geometry half, even when
    the content projection is scaled up a thousandfold; a joint LayerNorm lets loud content drown the box."""
    px = scene()[None]
    boxes = torch.tensor([[[0.1, 0.1, 0.3, 0.3]], [[0.7, 0.6, 0.9, 0.8]]])  # same crop content below, two places
    split = regions_model(regions={"fourier": 2, "split_norm": True})
    joint = regions_model(regions={"fourier": 2, "norm": True})
    assert split.image.ln_content is not None and isinstance(joint.image.ln, torch.nn.LayerNorm)
    for m in (split, joint):
        m.image.stem.cnn = ConstantCNN(m.image.stem.feature_dim)  # identical content at both boxes
        with torch.no_grad():
            m.image.stem.proj.weight.mul_(1000.0)
    gaps = {}
    for name, m in (("split", split), ("joint", joint)):
        with torch.no_grad():
            a = m.image(px, boxes=boxes[:1])[0][0, 1]
            b = m.image(px, boxes=boxes[1:])[0][0, 1]
        gaps[name] = float((a - b).norm() / a.norm())
    assert gaps["split"] > 0.3  # position keeps its share of the token
    assert gaps["joint"] < 0.05  # drowned: the motivation for split_norm


def test_split_norm_checkpoints_keep_their_parameters():
    m = regions_model(regions={"split_norm": True})
    keys = set(m.state_dict())
    assert {"image.ln_content.weight", "image.ln_geometry.bias"} <= keys and "image.ln.weight" not in keys


def test_masked_region_loss_counts_real_regions_of_matched_pairs_only():
    captions = ["a red square and a blue square", "a small blue square"]
    tok = train_wordpiece(captions * 3, 120, min_frequency=1)
    m = regions_model(vocab_size=tok.vocab_size, mlm_head=True, itm_head=True, mif_head=True).train()
    task = FusionPretrainTask(tok, 24, m.config.image_token_count, mlm_prob=0.5, itm_prob=0.0, mif_prob=0.5)
    batch = task.collate([{"pixel_values": scene(), "text": t, "image_key": i} for i, t in enumerate(captions)])
    assert batch["itm_labels"].tolist() == [1, 1]
    batch["image_token_mask"] = torch.tensor([[False, False, True, True]] * 2)  # region padding only (2 real)
    assert task.loss(m, batch)[1]["mif_loss"] == 0.0
    batch["image_token_mask"] = torch.tensor([[True, False, False, False]] * 2)
    assert task.loss(m, batch)[1]["mif_loss"] > 0.0
    batch["itm_labels"] = torch.tensor([0, 0])  # mismatched captions: nothing to reconstruct from
    assert task.loss(m, batch)[1]["mif_loss"] == 0.0
