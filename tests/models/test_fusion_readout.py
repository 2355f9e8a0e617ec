"""Question-conditioned region readout of the fusion VQA head (`vqa_readout="regions"`)."""
import pytest
import torch
import torch.nn.functional as F

from lingvis.models import build
from lingvis.models.fusion_readout import RegionReadout, masked_softmax

CNN = {"stem_width": 8, "stem_stride": 1, "widths": [8, 16], "depths": [1, 1]}


def scene(H=32, W=32):
    """White image (mean = std = 0.5 normalisation) with a red block on the right and a blue one on the left."""
    img = torch.ones(3, H, W)
    img[:, 10:16, 20:28] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    img[:, 12:18, 3:9] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]
    return (img - 0.5) / 0.5


def readout_model(**kw):
    torch.manual_seed(0)
    return build("fusion-tiny", image_encoder="regions", cnn=CNN, regions={"max_regions": 4, "crop": 8, "norm": True},
                 prenorm=False, pool="text_mean", answers=["left", "right", "yes"], vqa_readout="regions",
                 vqa_queries=3, **kw)


def test_masked_softmax_zeroes_padding_and_empty_rows():
    scores = torch.randn(2, 3, 5)
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]])[:, None, :]
    p = masked_softmax(scores, mask)
    assert torch.allclose(p[0].sum(-1), torch.ones(3)) and (p[0][:, [2, 4]] == 0).all()
    assert (p[1] == 0).all() and torch.isfinite(p).all()


def test_readout_shapes_and_padding_invariance():
    torch.manual_seed(0)
    r = RegionReadout(16, 3, 1e-5)
    text, image, pooled = torch.randn(2, 7, 16), torch.randn(2, 5, 16), torch.randn(2, 16)
    tmask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    imask = torch.tensor([[1] * 5, [1, 1, 0, 0, 0]])
    out = r(text, tmask, image, imask, pooled)
    assert out.shape == (2, 4 * 16) and torch.equal(out[:, :16], pooled)
    words, regions = r.attention(text, tmask, image, imask)
    assert words.shape == (2, 3, 7) and regions.shape == (2, 3, 5)
    assert (words[1, :, 4:] == 0).all() and (regions[1, :, 2:] == 0).all()
    assert torch.allclose(regions.sum(-1), torch.ones(2, 3), atol=1e-6)
    text2, image2 = text.clone(), image.clone()
    text2[1, 4:] = 100.0  # padded words and regions may hold anything
    image2[1, 2:] = -100.0
    assert torch.allclose(r(text2, tmask, image2, imask, pooled), out, atol=1e-6)
    assert not torch.allclose(r(text, tmask, image2, imask.new_ones(2, 5), pooled), out)  # real ones count
    empty = r(text, tmask, image, torch.zeros_like(imask), pooled)  # no region at all: finite
    assert torch.isfinite(empty).all()
    with pytest.raises(ValueError, match="vqa_queries"):
        RegionReadout(16, 0, 1e-5)


def test_model_with_readout_shapes_and_bad_config():
    m = readout_model().eval()
    ids, px = torch.randint(5, 128, (2, 6)), torch.stack([scene(), scene().flip(-1)])
    out = m(ids, px)
    assert m.vqa_features(out).shape == (2, 4 * 32) and m.vqa_logits(out).shape == (2, 3)
    assert m.vqa_head[0].in_features == 4 * 32
    with pytest.raises(ValueError, match="vqa_readout"):
        build("fusion-tiny", answers=["a"], vqa_readout="max")
    pooled = build("fusion-tiny", answers=["a"])
    assert pooled.vqa_readout is None and pooled.vqa_head[0].in_features == 32  # ViLT layout unchanged


@pytest.mark.parametrize("roles,geometry", [("none", False), ("order", True)])
def test_readout_overfits_a_relation_that_needs_roles(roles, geometry):
    """'is RED left or right of BLUE?' and its swap on a scene and its mirror image: the answer flips with
    either the words' order or the image (an XOR), so it needs the subject told from the object."""
    m = readout_model(vqa_roles=roles, vqa_geometry=geometry).train()
    red_blue = [1, 10, 11, 20, 21, 22, 12, 13, 2]  # [CLS] red block left-or-right-of blue block [SEP]
    blue_red = [1, 12, 13, 20, 21, 22, 10, 11, 2]
    ids = torch.tensor([red_blue, blue_red, red_blue, blue_red])
    px = torch.stack([scene(), scene(), scene().flip(-1), scene().flip(-1)])
    target = torch.tensor([1, 0, 0, 1])  # right, left, left, right
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    for _ in range(150):
        logits = m.vqa_logits(m(ids, px))
        loss = F.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.vqa_readout.parameters())
    m.eval()
    with torch.no_grad():
        assert torch.equal(m.vqa_logits(m(ids, px)).argmax(-1), target)
    assert loss.item() < 0.1


def test_readout_checkpoints_roundtrip_natively_not_as_vilt(tmp_path):
    import lingvis
    from lingvis.interop.vilt import exportable

    m = build("fusion-tiny", answers=["a", "b"], vqa_readout="regions", vqa_queries=2).eval()
    assert not exportable(m.config)  # HF ViLT has no readout: a ViLT twin would drop it
    lingvis.save(m, tmp_path / "m")
    back = lingvis.load(tmp_path / "m").eval()
    assert back.config.vqa_readout == "regions" and back.vqa_readout.n_queries == 2
    ids, px = torch.randint(5, 128, (2, 5)), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m.vqa_logits(m(ids, px)), back.vqa_logits(back(ids, px)))


def test_order_roles_bias_by_index_from_both_ends_and_skip_padding():
    torch.manual_seed(0)
    r = RegionReadout(16, 4, 1e-5, roles="order", max_len=12)
    with torch.no_grad():
        r.from_start.normal_()
        r.from_end.normal_()
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [0] * 3 + [1] * 4])  # full, right- and left-padded
    bias = r.order_bias(mask)  # (B, K, T)
    assert bias.shape == (3, 4, 7)
    expect = r.from_start[:, :4] + r.from_end[:, :4].flip(-1)  # 4 real words: indices 0..3 and 3..0
    assert torch.allclose(bias[1, :, :4], expect) and torch.allclose(bias[2, :, 3:], expect)
    assert torch.allclose(bias[0], r.from_start[:, :7] + r.from_end[:, :7].flip(-1))
    text, image, pooled = torch.randn(3, 7, 16), torch.randn(3, 5, 16), torch.randn(3, 16)
    imask = torch.ones(3, 5, dtype=torch.long)
    words, _ = r.attention(text, mask, image, imask)
    assert (words[1, :, 4:] == 0).all() and (words[2, :, :3] == 0).all()
    moved = text.clone()  # the same 4 words right- or left-padded read the same regions
    moved[2, 3:] = text[1, :4]
    out = r(moved, mask, image[[1, 1, 1]], imask, pooled[[1, 1, 1]])
    assert torch.allclose(out[1], out[2], atol=1e-5)
    # at initialisation even readers lean to the front of the question, odd ones to its back
    fresh = RegionReadout(16, 2, 1e-5, roles="order", max_len=12).order_bias(torch.ones(1, 9))[0]  # (K, T)
    assert fresh[0].argmax() == 0 and fresh[1].argmax() == 8
    with pytest.raises(ValueError, match="vqa_roles"):
        RegionReadout(16, 2, 1e-5, roles="syntax", max_len=12)
    with pytest.raises(ValueError, match="max_len"):
        RegionReadout(16, 2, 1e-5, roles="order")
    with pytest.raises(ValueError, match="vqa_roles"):
        build("fusion-tiny", answers=["a"], vqa_readout="regions", vqa_roles="syntax")


def test_order_roles_checkpoint_roundtrip(tmp_path):
    import lingvis

    m = build("fusion-tiny", answers=["a", "b"], vqa_readout="regions", vqa_queries=2, vqa_roles="order").eval()
    lingvis.save(m, tmp_path / "m")
    back = lingvis.load(tmp_path / "m").eval()
    assert back.config.vqa_roles == "order"
    assert torch.equal(back.vqa_readout.from_start, m.vqa_readout.from_start)
    ids, px = torch.randint(5, 128, (2, 5)), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m.vqa_logits(m(ids, px)), back.vqa_logits(back(ids, px)))


def test_geometry_slot_reads_expected_boxes_and_pair_offsets():
    torch.manual_seed(0)
    r = RegionReadout(16, 3, 1e-5, geometry=True)
    assert r.out_dim_factor == 5
    regions = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]])  # (1, K=3, N=3)
    boxes = torch.tensor([[[0.0, 0.0, 0.2, 0.4], [0.6, 0.2, 1.0, 0.4], [0.3, 0.3, 0.5, 0.5]]])  # (1, N, 4)
    f = r.box_features(regions, boxes)[0]
    assert f.shape == (4 * 3 + 2 * 3 * 2,)
    read = f[:12].view(3, 4)  # (K, 4) centre x, centre y, width, height
    assert torch.allclose(read[0], torch.tensor([0.1, 0.2, 0.2, 0.4]))
    assert torch.allclose(read[2], torch.tensor([0.45, 0.25, 0.3, 0.3]))
    offsets = f[12:18].view(3, 2)  # pairs (0, 1), (0, 2), (1, 2)
    assert torch.allclose(offsets[0], torch.tensor([0.1 - 0.8, 0.2 - 0.3])) and torch.allclose(f[18:], -f[12:18])
    g = RegionReadout.normalise_box_features(f[None], 3)[0]  # what the MLP sees: centred, scaled, same layout
    assert g.shape == f.shape
    assert torch.allclose(g[:12].view(3, 4)[0], (torch.tensor([0.1, 0.2, 0.2, 0.4]) - torch.tensor([0.5, 0.5, 0, 0])) * 4)
    assert torch.allclose(g[12:], 4 * f[12:])  # offsets are only scaled: dx and dy alike
    mid = r.box_features(torch.eye(3)[None], torch.tensor([[[0.4, 0.4, 0.6, 0.6]] * 3]))  # (1, .) all centred
    assert torch.allclose(RegionReadout.normalise_box_features(mid, 3)[0, [0, 1, 4, 5, 8, 9]], torch.zeros(6), atol=1e-6)
    text, image, pooled = torch.randn(2, 6, 16), torch.randn(2, 5, 16), torch.randn(2, 16)
    tmask, imask = torch.ones(2, 6, dtype=torch.long), torch.tensor([[1] * 5, [1, 1, 0, 0, 0]])
    bx = torch.rand(2, 5, 4)
    out = r(text, tmask, image, imask, pooled, bx)
    assert out.shape == (2, 5 * 16)
    bx2 = bx.clone()
    bx2[1, 2:] = 7.0  # boxes of padded regions never count
    assert torch.allclose(r(text, tmask, image, imask, pooled, bx2), out, atol=1e-6)
    bx2[0, 0] = 0.9  # a real box does
    assert not torch.allclose(r(text, tmask, image, imask, pooled, bx2)[0], out[0])
    with pytest.raises(ValueError, match="boxes"):
        r(text, tmask, image, imask, pooled)
    with pytest.raises(ValueError, match="vqa_geometry"):
        build("fusion-tiny", answers=["a"], vqa_readout="regions", vqa_geometry=True)  # patch model: no boxes


def test_model_output_carries_the_boxes_its_regions_came_from():
    m = readout_model(vqa_geometry=True, vqa_roles="order").eval()
    ids, px = torch.randint(5, 128, (2, 6)), torch.stack([scene(), scene().flip(-1)])
    with torch.no_grad():
        out = m(ids, px)
        given = m(ids, px, boxes=out.boxes, box_mask=out.mask[:, 7:])  # the same boxes given explicitly
    assert out.boxes.shape == (2, 4, 4) and torch.equal(out.hidden, given.hidden)
    assert torch.allclose(out.boxes[1, :2, 0].sort().values, 1 - out.boxes[0, :2, 2].sort(descending=True).values,
                          atol=1 / 32 + 1e-6)  # the mirror image mirrors the boxes
    assert m.vqa_features(out).shape == (2, 5 * 32)
