"""LLaVA: a vision tower's patch features, projected into a causal LM's embedding space, read by the LM
among its text tokens (Liu et al. 2023, LLaVA-1.5's `mlp2x_gelu` projector).

`image_features(pixels)` runs the ViT (a CLIP vision tower) only up to `vision_feature_layer` (default -2,
the penultimate layer as HF counts `hidden_states`), drops the class token (`vision_feature_select_strategy`
"default"; "full" keeps it) and projects to the LM width. `embed(input_ids, features)` places the features
at the image placeholder tokens (`image_token_id`, one per image token, in row-major order like HF's
`masked_scatter`). The decoder is any lingvis causal LM (GPT-2 style, from-scratch or Llama-family): after
the prefill the model decodes plain token ids, so image features are computed once per image and every
decode step is a text-only step of the LM (`generate`, the serving engine and beam search share this).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from ..nn import BlockInputs, KVCache, run_blocks
from ..nn.eval_mode import eval_mode
from ..nn.mlp import ACTIVATIONS
from ..nn.packed_linear import packed_linears
from .causal_lm import CausalLM
from .gpt import GPT, GPTConfig
from .llava_prefill import applies, prefill_last
from .registry import make_config, preset_config, register_family, register_preset
from .vit import ViT

STRATEGIES = ("default", "full")
IMAGE_POSITIONS = ("none", "rowcol", "onehot")
_MLP = re.compile(r"^mlp(\d+)x_(\w+)$")


def parse_projector(kind: str) -> tuple[int, str | None]:
    """'linear' -> (1, None); 'mlp2x_gelu' -> (2, 'gelu'): LLaVA's projector names (depth, activation)."""
    if kind == "linear":
        return 1, None
    m = _MLP.match(kind)
    if not m or int(m.group(1)) < 1 or m.group(2) not in ACTIVATIONS:
        raise ValueError(f"unknown projector {kind!r}; expected 'linear' or 'mlp<N>x_<act>' with act in "
                         f"{sorted(ACTIVATIONS)} (LLaVA-1.5: 'mlp2x_gelu')")
    return int(m.group(1)), m.group(2)


@dataclass
class LlavaConfig:
    vision: dict = field(default_factory=dict)     # ViTConfig fields of the vision tower (a CLIP image tower)
    text: dict = field(default_factory=dict)       # GPTConfig fields of the language model
    projector: str = "mlp2x_gelu"                  # linear | mlp<N>x_<act> (LLaVA-1.5: mlp2x_gelu)
    projector_bias: bool = True
    vision_feature_layer: int | list[int] = -2     # index into the tower's hidden states (HF counting)
    vision_feature_select_strategy: str = "default"  # default: drop the class token | full: keep it
    image_token_id: int = 0                        # the placeholder id in the LM vocabulary (`<image>`)
    pad_to_square: bool = False                    # preprocessing: pad to a square with the mean colour first
    spatial_merge: int = 1                         # m: each m x m block of patches -> one image token (lingvis-only)
    # none | rowcol: learned row + column embeddings added to the projected tokens | onehot: fixed one-hot row and
    # column features concatenated at the projector input, so a token's place is exact from step 0 (lingvis-only)
    image_position: str = "none"
    freeze_vision: bool = True                     # the tower stays frozen (both LLaVA stages)
    freeze_llm: bool = False                       # stage 1: only the projector trains

    def __post_init__(self):
        parse_projector(self.projector)
        if self.vision_feature_select_strategy not in STRATEGIES:
            raise ValueError(f"vision_feature_select_strategy must be one of {STRATEGIES}, got "
                             f"{self.vision_feature_select_strategy!r}")
        if self.image_position not in IMAGE_POSITIONS:
            raise ValueError(f"image_position must be one of {IMAGE_POSITIONS}, got {self.image_position!r}")
        if self.spatial_merge < 1:
            raise ValueError(f"spatial_merge must be >= 1, got {self.spatial_merge}")
        if self.spatial_merge > 1 and self.vision_feature_select_strategy == "full":
            raise ValueError("spatial_merge > 1 merges patch tokens only: use vision_feature_select_strategy "
                             "'default' (the class token has no neighbours to merge with)")
        layers = self.feature_layers_raw
        if not layers:
            raise ValueError("vision_feature_layer is an empty list")
        depth = self.vision.get("depth", 12)
        bad = [i for i in layers if not -(depth + 1) <= i <= depth]
        if bad:
            raise ValueError(f"vision_feature_layer {bad[0]} is outside the tower's {depth + 1} hidden states")
        vocab = self.text.get("vocab_size", GPTConfig.vocab_size)
        if not 0 <= self.image_token_id < vocab:
            raise ValueError(f"image_token_id {self.image_token_id} is outside the LM vocabulary of {vocab}")

    @property
    def feature_layers_raw(self) -> list[int]:
        v = self.vision_feature_layer
        return [v] if isinstance(v, int) else list(v)


class Projector(nn.Module):
    """(..., C_img * n_layers) -> (..., C_text): `depth` linears with the activation between them."""

    def __init__(self, kind: str, dim_in: int, dim_out: int, bias: bool = True):
        super().__init__()
        depth, self.activation = parse_projector(kind)
        self.layers = nn.ModuleList(nn.Linear(dim_in if i == 0 else dim_out, dim_out, bias=bias) for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            if i:
                x = ACTIVATIONS[self.activation](x)
            x = layer(x)
        return x


def merge_patches(x: torch.Tensor, grid: int, m: int) -> torch.Tensor:
    """(N, grid * grid, C) row-major patch tokens -> (N, (grid / m) ** 2, m * m * C): each m x m block of
    neighbouring patches concatenated into one token, blocks in row-major order (Qwen2-VL's patch merger input)."""
    if m == 1:
        return x
    N, _, C = x.shape
    g = grid // m
    x = x.reshape(N, g, m, g, m, C).permute(0, 1, 3, 2, 4, 5)  # (N, g, g, m, m, C)
    return x.reshape(N, g * g, m * m * C)


def with_grid_onehot(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, G * G [+ 1], C) row-major tokens -> (N, G * G [+ 1], C + 2G): each token's row and column as two fixed
    one-hot blocks concatenated after its features; a leading class token (strategy "full") gets zeros."""
    N, P, C = x.shape
    eye = torch.eye(grid, dtype=x.dtype, device=x.device)  # (G, G)
    rows = eye[:, None, :].expand(grid, grid, grid)  # (G_row, G_col, G): the row's one-hot
    cols = eye[None, :, :].expand(grid, grid, grid)  # (G_row, G_col, G): the column's one-hot
    pos = torch.cat([rows, cols], dim=-1).reshape(grid * grid, 2 * grid)  # (G * G, 2G)
    if P == grid * grid + 1:  # the class token first
        pos = torch.cat([pos.new_zeros(1, 2 * grid), pos])
    elif P != grid * grid:
        raise ValueError(f"{P} image tokens are not a {grid} x {grid} grid (with or without a class token)")
    return torch.cat([x, pos.expand(N, P, 2 * grid)], dim=-1)


class ImagePositions(nn.Module):
    """Learned row and column embeddings (G, C) each, zero at the start, added to the G x G projected image
    tokens (row-major) so the LM reads where each token lies; a class token (strategy "full") gets none."""

    def __init__(self, grid: int, dim: int):
        super().__init__()
        self.row = nn.Parameter(torch.zeros(grid, dim))
        self.col = nn.Parameter(torch.zeros(grid, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        G, C = self.row.shape
        pos = (self.row[:, None] + self.col[None, :]).reshape(G * G, C)  # (G * G, C)
        if x.shape[1] == G * G + 1:  # the class token first
            pos = torch.cat([pos.new_zeros(1, C), pos])
        return x + pos.to(x.dtype)


class Llava(CausalLM):
    """`forward(input_ids (B, T), pixel_values=(N_img, 3, H, W)) -> logits (B, T, V)`; without images (or
    after the prefill) it is the language model itself. `generate(input_ids, pixel_values=...)` decodes."""

    fused_loss = True
    reads_images = True       # generation and serving take images for this model (lingvis.data.llava_inputs)
    lora_skip = ("vision.",)  # LoRA (stage 2 --lora) adapts the language model, never the frozen tower

    def __init__(self, config: LlavaConfig):
        super().__init__()
        self.config = c = config
        self.vision = ViT(make_config("vit", dict(c.vision)))
        self.llm = GPT(make_config("gpt", dict(c.text)))
        n, m, grid = len(c.feature_layers_raw), c.spatial_merge, self.vision.config.grid
        if grid % m:
            raise ValueError(f"spatial_merge {m} does not divide the tower's {grid} x {grid} patch grid")
        extra = 2 * (grid // m) if c.image_position == "onehot" else 0  # one-hot row + column at the input
        self.projector = Projector(c.projector, self.vision.config.dim * n * m * m + extra, self.llm.config.n_embd,
                                   c.projector_bias)
        # named under "projector" so that whatever trains the projector (stage 1, LoRA's kept parts) trains it too
        self.projector_pos = ImagePositions(grid // m, self.llm.config.n_embd) if c.image_position == "rowcol" \
            else None
        self._freeze()

    # ----- freezing -------------------------------------------------------------------------------
    def _freeze(self) -> None:
        self.vision.requires_grad_(not self.config.freeze_vision)
        self.llm.requires_grad_(not self.config.freeze_llm)

    def set_stage(self, freeze_vision: bool | None = None, freeze_llm: bool | None = None) -> "Llava":
        """Change which parts train (stage 1: projector only; stage 2: projector + LM)."""
        if freeze_vision is not None:
            self.config.freeze_vision = freeze_vision
        if freeze_llm is not None:
            self.config.freeze_llm = freeze_llm
        self._freeze()
        return self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for frozen, part in ((self.config.freeze_vision, self.vision), (self.config.freeze_llm, self.llm)):
            if frozen:
                part.eval()  # a frozen part keeps dropout off
        return self

    def unused_parameters(self) -> list[str]:
        """Tower parameters after the last feature layer (its later blocks, final norm, pooler): never read."""
        need = self.feature_depth
        return [n for n, _ in self.named_parameters()
                if n.startswith(("vision.ln_post.", "vision.pooler.")) or
                (n.startswith("vision.blocks.") and int(n.split(".")[2]) >= need)]

    # ----- language-model protocol (generate, serving, beam search) -------------------------------
    @property
    def context_length(self) -> int:
        return self.llm.context_length

    @property
    def image_config(self):
        """The tower's config: image_size, image_mean, image_std (preprocessing)."""
        return self.vision.config

    @property
    def step_model(self) -> GPT:
        """The LM that runs every step after the prefill (text-only steps): generation builds its fused
        one-token step (decode_step.py) on it."""
        return self.llm

    def new_cache(self, batch_size: int, max_len: int | None = None, ring: bool = True) -> KVCache:
        return self.llm.new_cache(batch_size, max_len, ring)

    def reset_buffers(self) -> None:
        self.llm.reset_buffers()

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.llm.embed_tokens(input_ids)

    # ----- images -----------------------------------------------------------------------------------
    @property
    def feature_layers(self) -> list[int]:
        """Feature layers as non-negative indices into the tower's depth + 1 hidden states."""
        n = self.vision.config.depth + 1
        return [i % n for i in self.config.feature_layers_raw]

    @property
    def feature_depth(self) -> int:
        """Blocks of the tower that must run to reach every feature layer."""
        return max(self.feature_layers)

    @property
    def tokens_per_image(self) -> int:
        g = self.vision.config.grid // self.config.spatial_merge
        return g * g + (1 if self.config.vision_feature_select_strategy == "full" else 0)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, tokens_per_image, C_text) projected image tokens. The tower runs only as deep
        as the feature layer needs (the penultimate layer by default: its last block is skipped)."""
        hidden: list[torch.Tensor] = []
        x = self.vision.drop(self.vision.embed(pixel_values))  # (N, 1 + P, C_img)
        run_blocks(self.vision.blocks[:self.feature_depth], x, BlockInputs(), hidden)
        feats = [hidden[i] for i in self.feature_layers]
        if self.config.vision_feature_select_strategy == "default":
            feats = [f[:, 1:] for f in feats]  # drop the class token
        x = feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)  # (N, P, C_img * n)
        if self.config.spatial_merge > 1:
            x = merge_patches(x, self.vision.config.grid, self.config.spatial_merge)  # (N, P / m^2, C_img * n * m^2)
        if self.config.image_position == "onehot":
            x = with_grid_onehot(x, self.vision.config.grid // self.config.spatial_merge)  # (N, P', C_in + 2G)
        x = self.projector(x)  # (N, P', C_text)
        return x if self.projector_pos is None else self.projector_pos(x)

    def embed(self, input_ids: torch.Tensor, image_features: torch.Tensor | None) -> torch.Tensor:
        """(B, T) ids with placeholder tokens + (N, P, C) image features -> (B, T, C) embeddings, the features
        at the placeholders in order (image k fills placeholders k*P .. (k+1)*P - 1, counted row-major)."""
        x = self.llm.embed_tokens(input_ids)  # (B, T, C)
        mask = input_ids == self.config.image_token_id  # (B, T)
        n_slots = int(mask.sum())
        n_feats = 0 if image_features is None else image_features.shape[0] * image_features.shape[1]
        if n_slots != n_feats:
            n_img = 0 if image_features is None else image_features.shape[0]
            raise ValueError(f"input_ids hold {n_slots} image placeholder tokens (id {self.config.image_token_id}) "
                             f"but {n_img} image(s) give {n_feats} image tokens ({self.tokens_per_image} per image)")
        if n_feats == 0:
            return x
        return x.masked_scatter(mask[..., None], image_features.to(x.dtype))

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: KVCache | None = None, last_only: bool = False,
                labels: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None, image_features: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Logits (B, T, V), or the mean cross-entropy against `labels` (B, T) (-100 = ignored; the fused
        head + loss of GPT). Images come as `pixel_values` (N, 3, H, W) or precomputed `image_features`
        (N, P, C); either needs `input_ids` holding their placeholders. A prefill whose ids hold
        placeholders but no images is an error. A generation prefill (`last_only` into an empty cache, no
        gradient) runs the LM's last block on the last position only (llava_prefill.py)."""
        if pixel_values is not None and image_features is not None:
            raise ValueError("pass pixel_values or image_features, not both")
        if pixel_values is not None:
            image_features = self.image_features(pixel_values)
        if image_features is not None:
            if input_ids is None or inputs_embeds is not None:
                raise ValueError("images need input_ids holding their placeholder tokens (not inputs_embeds)")
            inputs_embeds, input_ids = self.embed(input_ids, image_features), None
        elif input_ids is not None and (cache is None or cache.length == 0) and \
                bool((input_ids == self.config.image_token_id).any()):
            self.embed(input_ids, None)  # a prefill with placeholders but no images: raises, naming the counts
        if last_only and labels is None and (input_ids is None) != (inputs_embeds is None) and \
                applies(self.llm, cache, attention_mask, position_ids):
            x = self.llm.wte(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
            return prefill_last(self.llm, x, cache)  # the last block only where the last position needs it
        return self.llm(input_ids, attention_mask, position_ids, cache, last_only, labels=labels,
                        inputs_embeds=inputs_embeds)

    @torch.inference_mode()
    def prompt_embeds(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor | None:
        """The prefill embeddings (B, T, C) of prompts with images (None without images): features are
        computed here once, decode steps then read only the KV cache."""
        if pixel_values is None:
            if bool((input_ids == self.config.image_token_id).any()):
                self.embed(input_ids, None)  # raises, naming the counts
            return None
        return self.embed(input_ids, self.image_features(pixel_values))

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int = 32, pixel_values: torch.Tensor | None = None,
                 **kw) -> torch.Tensor:
        """(B, T + N) ids from prompts whose placeholders are filled by the images of `pixel_values`
        (keywords as `CausalLM.generate`)."""
        # one mode switch and one routing of the linears (to the kernel measured faster) for the whole call: the
        # tower and projector here, the LM's prefill and steps inside (where the nested uses find them done)
        with eval_mode(self), packed_linears(self):
            if kw.get("inputs_embeds") is None:
                kw["inputs_embeds"] = self.prompt_embeds(input_ids, pixel_values)
            return super().generate(input_ids, max_new_tokens, **kw)


def llava_fields(vision_preset: str, text_preset: str, vision: dict | None = None, **text) -> dict:
    """LlavaConfig fields from a ViT (or CLIP) preset and a GPT preset, with overrides of either."""
    vfam, vcfg = preset_config(vision_preset)
    tower = dataclasses.asdict(vcfg) if vfam == "vit" else dict(vcfg.vision)
    _, tcfg = preset_config(text_preset)
    return {"vision": {**tower, **(vision or {})}, "text": {**dataclasses.asdict(tcfg), **text}}


register_family("llava", LlavaConfig, Llava, "vision tower + projector + causal LM (LLaVA-style image chat)")
register_preset("llava-shapes", "llava", "48px CLIP tower (clip-shapes) + mlp2x_gelu + 4-layer width-192 GPT: shapes "
                "image chat on a CPU", **llava_fields("clip-shapes", "gpt-micro", n_layer=4, n_head=4, n_embd=192,
                                                     block_size=160, vocab_size=512), image_token_id=5)
register_preset("llava-nano", "llava", "32px ViT + linear projector + 2-layer width-64 GPT: tests",
                **llava_fields("clip-nano", "gpt-nano", vision={"depth": 2}, vocab_size=96), projector="linear",
                image_token_id=3)
register_preset("llava-llama-nano", "llava", "32px CLIP tower + mlp2x_gelu + 2-layer Llama-style LM (GQA): tests",
                **llava_fields("clip-nano", "llama-micro", vision={"depth": 2}, vocab_size=96, n_layer=2, n_head=4,
                               n_kv_head=2, n_embd=64, block_size=96), image_token_id=3)
