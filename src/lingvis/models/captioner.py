"""Captioner: an image tower (ViT or CNN, `forward_features -> (B, N, C)`) + a GPT decoder whose blocks
cross-attend to the image tokens. The same composition as Hugging Face's VisionEncoderDecoderModel
(ViT encoder + GPT-2 decoder with cross-attention, `enc_to_dec_proj` when the widths differ)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from ..nn import KVCache
from .gpt import GPT, GPTConfig
from .registry import family, make_config, register_family, register_preset
from .seq2seq import DecoderView


@dataclass
class CaptionerConfig:
    vision_family: str = "vit"
    vision: dict = field(default_factory=dict)    # fields of the image tower's config
    decoder: dict = field(default_factory=dict)   # GPTConfig fields (cross-attention is switched on)
    project: bool | None = None    # Linear from the tower width to the decoder width; default: when they differ
    bos_id: int = 0                # decoder start token
    eos_id: int = 0
    pad_id: int = 0

    def __post_init__(self):
        if self.vision_family not in ("vit", "cnn"):
            raise ValueError(f"vision_family must be 'vit' or 'cnn', got {self.vision_family!r}")

    def decoder_config(self, memory_dim: int) -> GPTConfig:
        fields = {**self.decoder, "cross_attention": True}
        fields["cross_dim"] = fields.get("n_embd", GPTConfig.n_embd) if self.projects(memory_dim) else memory_dim
        return make_config("gpt", fields)

    def projects(self, memory_dim: int) -> bool:
        return self.project if self.project is not None else memory_dim != self.decoder.get("n_embd", GPTConfig.n_embd)


def token_dim(tower: nn.Module) -> int:
    """Width of the tokens `forward_features` returns (a CNN's feature map may differ from its pooled width)."""
    return getattr(tower.config, "feature_dim", None) or tower.config.dim


class Captioner(nn.Module):
    """`forward(pixels (B, 3, H, W), input_ids (B, T)) -> logits (B, T, V)`; `generate(pixels)` captions."""

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = c = config
        self.encoder = family(c.vision_family).model_cls(make_config(c.vision_family, dict(c.vision)))
        mem = token_dim(self.encoder)
        dcfg = c.decoder_config(mem)
        self.proj = nn.Linear(mem, dcfg.n_embd) if c.projects(mem) else None
        self.decoder = GPT(dcfg)

    def unused_parameters(self) -> list[str]:
        """Parameters of the image tower's own pooling (a ViT pooler, a CNN's attention pool) that captioning
        never reads: the tower reads out its tokens. Kept so tower checkpoints (and HF vit-gpt2) load as is."""
        return [n for n, _ in self.named_parameters() if n.startswith(("encoder.pooler.", "encoder.head."))]

    @property
    def image_config(self):
        """The tower's config: image_size, image_mean, image_std (for preprocessing)."""
        return self.encoder.config

    @property
    def context_length(self) -> int:
        return self.decoder.context_length

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        return self.decoder.new_cache(batch_size, max_len)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N, C_dec) image tokens for cross-attention."""
        x = self.encoder.forward_features(pixels)  # (B, N, C_enc)
        return self.proj(x) if self.proj is not None else x

    def decode(self, input_ids: torch.Tensor | None, memory: torch.Tensor, memory_mask: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
               cache: KVCache | None = None, last_only: bool = False,
               inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(input_ids, attention_mask, position_ids, cache, last_only, memory, memory_mask,
                            inputs_embeds=inputs_embeds)

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(input_ids, self.encode(pixels), attention_mask=attention_mask)  # (B, T, V)

    def decoder_view(self, memory: torch.Tensor) -> DecoderView:
        return DecoderView(self, memory, None)

    def start_ids(self, batch_size: int, device=None) -> torch.Tensor:
        return torch.full((batch_size, 1), self.config.bos_id, dtype=torch.long, device=device)

    @torch.inference_mode()
    def generate(self, pixels: torch.Tensor, num_beams: int = 1, **kw) -> torch.Tensor:
        """(B, 3, H, W) -> (B * R, 1 + N) caption ids starting with `bos_id`: beam search for `num_beams` > 1
        (`BeamConfig` keywords), else greedy / sampling (`SamplingConfig` keywords)."""
        from ..beam import generate_tokens

        was_training = self.training
        self.eval()
        try:
            view = self.decoder_view(self.encode(pixels))
            return generate_tokens(view, self.start_ids(pixels.shape[0], pixels.device), num_beams=num_beams,
                                   default_eos=self.config.eos_id, default_pad=self.config.pad_id, **kw)
        finally:
            self.train(was_training)


def preset_fields(vision_preset: str, decoder_preset: str, **decoder) -> dict:
    """Captioner config fields from a vision preset and a GPT preset."""
    from .registry import preset_config

    vfam, vcfg = preset_config(vision_preset)
    _, dcfg = preset_config(decoder_preset)
    return {"vision_family": vfam, "vision": dataclasses.asdict(vcfg), "decoder": {**dataclasses.asdict(dcfg),
                                                                                   **decoder}}


register_family("captioner", CaptionerConfig, Captioner, "image tower + GPT decoder with cross-attention")
register_preset("captioner-tiny", "captioner", "vit-tiny (64px) + 3-layer width-192 decoder: CPU minutes",
                **preset_fields("vit-tiny", "gpt-micro", n_layer=3, n_head=3, n_embd=192, block_size=64))
register_preset("captioner-cnn-tiny", "captioner", "cnn-tiny (64px) + 3-layer width-192 decoder",
                **preset_fields("cnn-tiny", "gpt-micro", n_layer=3, n_head=3, n_embd=192, block_size=64))
register_preset("captioner-nano", "captioner", "vit-nano (32px) + 2-layer width-32 decoder: tests",
                **preset_fields("vit-nano", "gpt-nano", block_size=32))
register_preset("vit-gpt2", "captioner", "ViT-Base/16 encoder + GPT-2 small decoder (nlpconnect/vit-gpt2 layout)",
                **preset_fields("vit-base-16", "gpt2"))
