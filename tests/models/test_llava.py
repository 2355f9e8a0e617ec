"""The llava family: images placed at their placeholders, the tower run only as deep as the feature layer,
stage freezing, placeholder/image count errors naming both, cached generation with left padding, and
GPT-2 style and Llama-style decoders."""
import pytest
import torch

import lingvis
from lingvis.models.llava import Llava, LlavaConfig, parse_projector


def model(name="llava-nano", **kw):
    torch.manual_seed(0)
    return lingvis.build(name, **kw).eval()


def prompt(m, n_images=1, T=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(4, m.llm.config.vocab_size, (T,), generator=g)
    parts = [text[:2]]
    for _ in range(n_images):
        parts += [torch.full((m.tokens_per_image,), m.config.image_token_id), text[2:4]]
    return torch.cat([*parts, text[4:]])[None]


def pixels(m, n, seed=2):
    s = m.vision.config.image_size
    return torch.randn(n, 3, s, s, generator=torch.Generator().manual_seed(seed))


def test_features_come_from_the_chosen_hidden_state():
    m = model(vision_feature_layer=-2)
    px = pixels(m, 2)
    _, hidden = m.vision.forward_features(px, output_hidden_states=True)
    want = m.projector(hidden[-2][:, 1:])
    assert torch.allclose(m.image_features(px), want, atol=1e-6)
    full = model(vision_feature_layer=[0, -1], vision_feature_select_strategy="full")
    assert full.tokens_per_image == m.tokens_per_image + 1
    want = full.projector(torch.cat([hidden[0], hidden[-1]], dim=-1))
    assert torch.allclose(full.image_features(px), want, atol=1e-6)


def test_images_fill_the_placeholders_in_order():
    m = model()
    ids = prompt(m, 2)
    px = pixels(m, 2)
    feats = m.image_features(px)
    emb = m.embed(ids, feats)[0]
    slots = (ids[0] == m.config.image_token_id).nonzero().squeeze(1)
    assert torch.equal(emb[slots], feats.flatten(0, 1))
    text = (ids[0] != m.config.image_token_id).nonzero().squeeze(1)
    assert torch.equal(emb[text], m.llm.wte(ids[0, text]))
    # the logits are the language model's over those embeddings
    assert torch.allclose(m(ids, pixel_values=px), m.llm(inputs_embeds=emb[None]), atol=1e-6)


def test_placeholder_count_mismatch_names_both_numbers():
    m = model()
    with pytest.raises(ValueError, match=r"hold 32 image placeholder tokens .* but 1 image\(s\) give 16"):
        m(prompt(m, 2), pixel_values=pixels(m, 1))
    with pytest.raises(ValueError, match=r"hold 16 image placeholder tokens .* but 0 image\(s\)"):
        m(prompt(m, 1))
    with pytest.raises(ValueError, match=r"0 image placeholder tokens .* 2 image\(s\) give 32"):
        m.generate(prompt(m, 0), max_new_tokens=2, pixel_values=pixels(m, 2))


def test_stage_one_trains_only_the_projector():
    m = model(freeze_llm=True).train()
    assert not m.llm.training and not m.vision.training
    loss = m(prompt(m), pixel_values=pixels(m, 1)).square().mean()
    loss.backward()
    trained = {n for n, p in m.named_parameters() if p.grad is not None}
    assert trained == {n for n, _ in m.projector.named_parameters(prefix="projector")}
    m.set_stage(freeze_llm=False)
    assert m.llm.training and all(p.requires_grad for p in m.llm.parameters())
    assert not any(p.requires_grad for p in m.vision.parameters())


@pytest.mark.parametrize("name", ["llava-nano", "llava-llama-nano"])
def test_batched_left_padded_generation_matches_one_by_one(name):
    m = model(name)
    rows = [prompt(m, 1, T=9, seed=3)[0], prompt(m, 2, T=5, seed=4)[0]]
    px = pixels(m, 3)
    singles = [m.generate(rows[0][None], 8, pixel_values=px[:1]), m.generate(rows[1][None], 8, pixel_values=px[1:])]
    T = max(len(r) for r in rows)
    ids = torch.zeros(2, T, dtype=torch.long)
    mask = torch.zeros(2, T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, T - len(r):], mask[i, T - len(r):] = r, 1
    out = m.generate(ids, 8, pixel_values=px, attention_mask=mask)
    for i, s in enumerate(singles):
        assert torch.equal(out[i, T:], s[0, len(rows[i]):])


def test_labels_give_the_fused_loss():
    m = model()
    ids = prompt(m, 1)
    labels = torch.full_like(ids, -100)
    labels[0, -3:] = ids[0, -3:]
    logits = m(ids, pixel_values=pixels(m, 1))
    want = torch.nn.functional.cross_entropy(logits[0], labels[0], ignore_index=-100)
    got = m(ids, pixel_values=pixels(m, 1), labels=labels)
    assert torch.allclose(got, want, atol=1e-5)


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="unknown projector 'mlp2x_swish'"):
        LlavaConfig(projector="mlp2x_swish")
    with pytest.raises(ValueError, match="vision_feature_select_strategy"):
        LlavaConfig(vision_feature_select_strategy="cls")
    with pytest.raises(ValueError, match="image_token_id 500 is outside the LM vocabulary of 96"):
        LlavaConfig(text={"vocab_size": 96}, image_token_id=500)
    with pytest.raises(ValueError, match="vision_feature_layer 7"):
        LlavaConfig(vision={"depth": 2}, vision_feature_layer=7)
    assert parse_projector("mlp3x_relu") == (3, "relu")
    assert isinstance(model(projector="mlp3x_relu"), Llava)


def test_merged_patches_concatenate_each_two_by_two_block():
    m = model(spatial_merge=2)  # clip-nano: a 4 x 4 patch grid -> 2 x 2 merged tokens
    assert m.tokens_per_image == 4
    px = pixels(m, 2)
    _, hidden = m.vision.forward_features(px, output_hidden_states=True)
    patches = hidden[-2][:, 1:].reshape(2, 4, 4, -1)  # (N, row, col, C)
    # merged token 1 is the block of rows 0-1, columns 2-3, its patches in row-major order
    block = torch.cat([patches[:, 0, 2], patches[:, 0, 3], patches[:, 1, 2], patches[:, 1, 3]], dim=-1)
    feats = m.image_features(px)
    assert feats.shape == (2, 4, m.llm.config.n_embd)
    assert torch.allclose(feats[:, 1], m.projector(block), atol=1e-6)
    ids = prompt(m, 2)
    assert m(ids, pixel_values=px).shape == (1, ids.shape[1], m.llm.config.vocab_size)


def test_row_column_positions_add_to_each_image_token():
    plain, m = model(), model(image_position="rowcol")
    m.load_state_dict(plain.state_dict(), strict=False)
    px = pixels(m, 1)
    assert torch.equal(m.image_features(px), plain.image_features(px))  # zero at the start
    with torch.no_grad():
        m.projector_pos.row.normal_()
        m.projector_pos.col.normal_()
    got = m.image_features(px).reshape(1, 4, 4, -1)
    want = plain.image_features(px).reshape(1, 4, 4, -1)
    assert torch.allclose(got[0, 2, 1], want[0, 2, 1] + m.projector_pos.row[2] + m.projector_pos.col[1], atol=1e-6)
    full = model(image_position="rowcol", vision_feature_select_strategy="full")
    full.projector_pos.row.data.normal_()
    feats = full.image_features(px)
    assert torch.equal(feats[:, 0], full.projector(full.vision.forward_features(px, output_hidden_states=True)[1][-2]
                                                   )[:, 0])  # the class token gets no position
    # stage 1 trains the positions with the projector
    m = model(image_position="rowcol", freeze_llm=True).train()
    m(prompt(m), pixel_values=pixels(m, 1)).square().mean().backward()
    trained = {n for n, p in m.named_parameters() if p.grad is not None}
    assert trained == {n for n, _ in m.named_parameters() if n.startswith("projector")}
    assert {"projector_pos.row", "projector_pos.col"} <= trained


def test_onehot_positions_are_exact_projector_inputs():
    m = model(image_position="onehot")  # llava-nano: 4 x 4 patches, one token each
    C = m.vision.config.dim
    assert m.projector.layers[0].in_features == C + 2 * 4
    px = pixels(m, 2)
    feats = m.vision.forward_features(px, output_hidden_states=True)[1][-2][:, 1:]  # (2, 16, C)
    seen = []
    m.projector.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    out = m.image_features(px)
    assert out.shape == (2, 16, m.llm.config.n_embd)
    x = seen[0].reshape(2, 4, 4, C + 8)  # (N, row, col, C + 2G)
    assert torch.equal(x[..., :C], feats.reshape(2, 4, 4, C))  # the features unchanged
    assert x[1, 2, 1, C:].tolist() == [0, 0, 1, 0, 0, 1, 0, 0]  # row 2, column 1
    assert torch.equal(x[..., C:].sum(-1), torch.full((2, 4, 4), 2.0))
    # merged tokens: a 2 x 2 grid of one-hots; the class token (strategy "full") gets zeros
    merged = model(image_position="onehot", spatial_merge=2)
    assert merged.projector.layers[0].in_features == 4 * C + 2 * 2
    assert merged.image_features(px).shape == (2, 4, merged.llm.config.n_embd)
    seen.clear()
    full = model(image_position="onehot", vision_feature_select_strategy="full")
    full.projector.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    full.image_features(px)
    assert seen[0].shape == (2, 17, C + 8) and not seen[0][:, 0, C:].any()
    assert seen[0][1, 5, C:].tolist() == [0, 1, 0, 0, 1, 0, 0, 0]  # the class token, then row 1 column 0
    # stage 2 trains through it and the positions stay fixed (no parameters)
    m = model(image_position="onehot").train()
    m(prompt(m), pixel_values=pixels(m, 1)).square().mean().backward()
    assert m.projector.layers[0].weight.grad[:, C:].abs().sum() > 0
    assert m.projector_pos is None


def test_image_token_layout_errors_are_named():
    with pytest.raises(ValueError, match="image_position must be one of"):
        LlavaConfig(image_position="xy")
    with pytest.raises(ValueError, match="spatial_merge must be >= 1"):
        LlavaConfig(spatial_merge=0)
    with pytest.raises(ValueError, match="merges patch tokens only"):
        LlavaConfig(spatial_merge=2, vision_feature_select_strategy="full")
    with pytest.raises(ValueError, match="spatial_merge 3 does not divide the tower's 4 x 4 patch grid"):
        model(spatial_merge=3)
