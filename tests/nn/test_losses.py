import pytest
import torch
import torch.nn.functional as F

import lingvis
from lingvis.nn.losses import linear_cross_entropy
from lingvis.tasks.lm import CausalLMTask


def leaves(n=12, c=8, v=19, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, c, generator=g, requires_grad=True)
    w = torch.randn(v, c, generator=g).mul_(0.5).requires_grad_()
    y = torch.randint(0, v, (n,), generator=g)
    return h, w, y


@pytest.mark.parametrize("ignored", [0, 4])
def test_matches_unfused_cross_entropy_and_gradients(ignored):
    h, w, y = leaves()
    y[:ignored] = -100
    ref = F.cross_entropy(h @ w.t(), y, ignore_index=-100)
    gh, gw = torch.autograd.grad(ref * 3.0, (h, w))
    ours = linear_cross_entropy(h, w, y)
    fh, fw = torch.autograd.grad(ours * 3.0, (h, w))  # upstream gradient other than 1
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(fh, gh, atol=1e-6) and torch.allclose(fw, gw, atol=1e-6)
    if ignored:
        assert torch.equal(fh[:ignored], torch.zeros_like(fh[:ignored]))


def test_no_grad_and_all_ignored():
    h, w, y = leaves()
    with torch.no_grad():
        assert torch.allclose(linear_cross_entropy(h, w, y), F.cross_entropy(h @ w.t(), y), atol=1e-6)
    assert linear_cross_entropy(h, w, torch.full_like(y, -100)).item() == 0.0


def test_second_backward_and_bad_shapes_raise():
    h, w, y = leaves()
    loss = linear_cross_entropy(h, w, y)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="cannot run backward twice"):
        loss.backward()
    with pytest.raises(ValueError, match=r"expected hidden \(N, C\) and labels \(N,\)"):
        linear_cross_entropy(h[None], w, y)


def test_gpt_labels_path_equals_logits_path_with_tied_weights():
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=31)
    x = torch.randint(0, 31, (2, 9))
    labels = torch.randint(0, 31, (2, 9))
    labels[0, :3] = -100
    ref = F.cross_entropy(model(x).flatten(0, 1), labels.flatten(), ignore_index=-100)
    grads = torch.autograd.grad(ref, list(model.parameters()))
    fused, _ = CausalLMTask().loss(model, {"input_ids": x, "labels": labels})
    fgrads = torch.autograd.grad(fused, list(model.parameters()))
    assert torch.allclose(fused, ref, atol=1e-5)
    for (name, _), a, b in zip(model.named_parameters(), grads, fgrads):
        assert torch.allclose(a, b, atol=1e-5), name
