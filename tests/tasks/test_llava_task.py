"""LLaVA training batches: per-token loss weights (from weighted turns) batch as 'loss_weights' only when a sample
has them; the weighted loss is sum(w * ce) / sum(w) over assistant tokens and equals the fused loss at weight 1."""
import torch

import lingvis
from lingvis.data.llava_inputs import IGNORE
from lingvis.tasks.llava import LlavaSample, LlavaTask, weighted_cross_entropy


def _batch(m, weights):
    torch.manual_seed(0)
    P = m.tokens_per_image
    T = P + 8
    ids = torch.randint(4, m.llm.config.vocab_size, (T,)).tolist()
    ids[1:1 + P] = [m.config.image_token_id] * P
    labels = [IGNORE] * (1 + P) + ids[2 + P:] + [5]
    s = m.image_config.image_size
    pix = [torch.randn(3, s, s)]
    samples = [LlavaSample(ids, labels, pix, weights), LlavaSample(ids[:-2], labels[:-2], pix, None)]
    return LlavaTask(pad_id=0).collate(samples)


def test_unweighted_batches_have_no_weights_and_weight_one_gives_the_fused_loss():
    torch.manual_seed(0)
    m = lingvis.build("llava-nano").eval()
    plain = _batch(m, None)
    assert plain["loss_weights"] is None
    ones = _batch(m, [1.0] * (m.tokens_per_image + 8))
    assert ones["loss_weights"].shape == ones["labels"].shape and bool((ones["loss_weights"] == 1).all())
    task = LlavaTask(0)
    with torch.no_grad():
        fused, _ = task.loss(m, plain)
        weighted, _ = task.loss(m, ones)
    torch.testing.assert_close(weighted, fused, rtol=1e-4, atol=1e-4)


def test_weights_move_the_loss_toward_the_weighted_tokens():
    logits = torch.randn(1, 4, 7, generator=torch.Generator().manual_seed(1))  # (B, T, V)
    labels = torch.tensor([[IGNORE, 2, 3, 4]])
    ce = torch.nn.functional.cross_entropy(logits[0], torch.tensor([0, 2, 3, 4]), reduction="none")
    w = torch.tensor([[9.0, 1.0, 3.0, 1.0]])  # the ignored token's weight does not count
    want = (ce[1] + 3 * ce[2] + ce[3]) / 5
    torch.testing.assert_close(weighted_cross_entropy(logits, labels, w), want)
    torch.testing.assert_close(weighted_cross_entropy(logits, labels, torch.ones(1, 4)), ce[1:].mean())
