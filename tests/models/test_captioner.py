"""Captioner: ViT or CNN tower + GPT decoder with cross-attention; gradients, cache, greedy decoding."""
import pytest
import torch

from lingvis.models import registry
from lingvis.models.captioner import CaptionerConfig




def build(preset, vocab=40, **kw):
    torch.manual_seed(0)
    fam, cfg = registry.preset_config(preset, **kw)
    cfg.decoder = {**cfg.decoder, "vocab_size": vocab}
    cfg.bos_id, cfg.eos_id = 1, 2
    return registry.family(fam).model_cls(cfg)


@pytest.mark.parametrize("preset,size", [("captioner-nano", 32), ("captioner-cnn-tiny", 64)])
def test_forward_and_every_used_parameter_gets_a_gradient(preset, size):
    model = build(preset).train()
    px, ids = torch.randn(2, 3, size, size), torch.randint(0, 40, (2, 6))
    logits = model(px, ids)
    assert logits.shape == (2, 6, 40)
    logits.sum().backward()
    unused = ("encoder.pooler", "encoder.head", "encoder.attn_pool")  # pooled-embedding parts the captioner skips
    for name, p in model.named_parameters():
        if not name.startswith(unused):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_projection_only_when_widths_differ():
    assert build("captioner-nano").proj is not None  # vit-nano 32 -> decoder 64
    same = build("captioner-nano", project=False)
    assert same.proj is None and same.decoder.config.cross_dim == 32
    with pytest.raises(ValueError, match="vision_family"):
        CaptionerConfig(vision_family="resnet")


def test_cached_greedy_generation_matches_full_passes():
    model = build("captioner-nano").eval()
    px = torch.randn(2, 3, 32, 32)
    out = model.generate(px, max_new_tokens=6, eos_ids=[])
    seq = out[:, :1]
    with torch.no_grad():
        for _ in range(6):
            seq = torch.cat([seq, model(px, seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq) and bool((out[:, 0] == 1).all())
    beams = model.generate(px, num_beams=3, max_new_tokens=6, num_return_sequences=2)
    assert beams.shape[0] == 4


def test_decoder_without_memory_is_an_error():
    model = build("captioner-nano")
    with pytest.raises(ValueError, match="pass `memory`"):
        model.decoder(torch.ones(1, 3, dtype=torch.long))
