"""Fusion (VL-BERT / ViLT style): text tokens and image tokens in ONE bidirectional Transformer stack.

Sequence = [text CLS, text ..., text SEP, pad...] + [image CLS, image tokens...]; the image tokens are ViT
patches or CNN grid cells (with grid position embeddings), or, as in VL-BERT, one token per object region
(RoI CNN features + box-geometry embedding; `fusion_regions`). A modality (token-type) embedding tells
text (0) from image (1). Heads: pooler, image-conditioned masked LM, image-text matching, masked
image-feature regression, image-text contrastive projections (over unimodal passes of the same stack),
VQA classifier.
With prenorm=True, patch image tokens and layernorm eps 1e-12 the layout is exactly HF ViLT."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import BlockConfig, BlockInputs, make_norm, run_blocks, transformer_block
from ..nn.masks import combine, padding_mask
from .fusion_embed import CNNStem, ImageTokens, PatchStem, TextEmbeddings
from .fusion_heads import Pooler, vqa_classifier
from .fusion_readout import ROLES, RegionReadout
from .heads import MLMHead
from .init import init_normal
from .fusion_regions import RegionConfig, RegionStem, RegionTokens, propose_boxes
from .registry import register_family, register_preset


@dataclass
class FusionConfig:
    vocab_size: int = 30522
    max_text_len: int = 40            # text position table size (HF max_position_embeddings)
    type_vocab_size: int = 2          # text segment ids
    modality_types: int = 2           # 0 = text, 1 = image (HF modality_type_vocab_size)
    dim: int = 768
    n_layer: int = 12
    n_head: int = 12
    mlp_hidden: int = 3072
    activation: str = "gelu"
    norm_eps: float = 1e-12
    prenorm: bool = True              # pre-norm + final LayerNorm (ViLT); False = BERT post-norm
    dropout: float = 0.0
    pad_token_id: int = 0
    image_size: int = 384             # size the image position table is laid out for
    patch_size: int = 32              # patch stem: patch side; conv stem: ignored (grid = size / 2^stages)
    channels: int = 3
    image_encoder: str = "patch"      # patch (ViT-style) | cnn (CNN grid features) | regions (RoI features)
    cnn: dict = field(default_factory=dict)  # CNNConfig fields of the grid (cnn) or region-crop (regions) CNN
    regions: dict = field(default_factory=dict)  # RegionConfig fields (image_encoder="regions")
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    pooler: bool = True
    pool: str = "cls"                 # cls (ViLT) | text_mean (mean of the real text tokens)
    mlm_head: bool = False
    itm_head: bool = False
    mif_head: bool = False            # masked image-feature regression (+ an image mask token)
    itc_head: bool = False            # image-text contrastive projections over unimodal passes (ALBEF ITC)
    itc_dim: int = 128
    answers: list[str] = field(default_factory=list)  # VQA answer vocabulary; empty = no VQA head
    vqa_readout: str = "pooled"       # pooled (ViLT: classifier on the pooled vector) | regions (+ question-
                                      # conditioned region readings, `fusion_readout`: subject/object apart)
    vqa_queries: int = 4              # region readers of vqa_readout="regions"
    vqa_roles: str = "none"           # none | order (readers' word weights biased by word index from the
                                      # question's start / end: subject and object readers, `fusion_readout`)
    vqa_geometry: bool = False        # + the boxes the readers read and their pairwise offsets (regions models)
    vqa_loss: str = "bce"             # bce (ViLT: one sigmoid per answer) | softmax (one distribution)
    classifier_eps: float = 1e-5

    def __post_init__(self):
        if self.image_encoder not in ("patch", "cnn", "regions"):
            raise ValueError(f"image_encoder must be 'patch', 'cnn' or 'regions', got {self.image_encoder!r}")
        if self.image_encoder == "regions":
            self.regions = asdict(RegionConfig(**self.regions))
        if self.image_encoder == "cnn":
            self.cnn = {"image_size": self.image_size, "pool": "mean", **self.cnn}
            if self.cnn["image_size"] != self.image_size:
                raise ValueError(f"cnn image_size {self.cnn['image_size']} != image_size {self.image_size}")
        if self.image_size % self.stride:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the image stride {self.stride}")
        if self.vqa_readout not in ("pooled", "regions"):
            raise ValueError(f"vqa_readout must be 'pooled' or 'regions', got {self.vqa_readout!r}")
        if self.vqa_roles not in ROLES:
            raise ValueError(f"vqa_roles must be one of {ROLES}, got {self.vqa_roles!r}")
        if self.vqa_geometry and (self.vqa_readout != "regions" or self.image_encoder != "regions"):
            raise ValueError("vqa_geometry needs vqa_readout='regions' and image_encoder='regions' (it reads boxes)")
        if self.vqa_queries < 1:
            raise ValueError(f"vqa_queries must be >= 1, got {self.vqa_queries}")
        if self.vqa_loss not in ("bce", "softmax"):
            raise ValueError(f"vqa_loss must be 'bce' or 'softmax', got {self.vqa_loss!r}")
        if (self.itm_head or self.answers) and not self.pooler:
            raise ValueError("the ITM and VQA heads read the pooled output: set pooler=True")

    @property
    def stride(self) -> int:
        if self.image_encoder == "patch":
            return self.patch_size
        if self.image_encoder == "regions":
            return 1
        from .cnn import CNNConfig

        return CNNConfig(**self.cnn).reduction

    @property
    def grid(self) -> int:
        return self.image_size // self.stride

    def image_token_count(self, height: int, width: int) -> int:
        """Image tokens (image CLS excluded) for a padded batch of `height` x `width` images."""
        if self.image_encoder == "regions":
            return self.regions["max_regions"]
        return (height // self.stride) * (width // self.stride)

    def block_config(self) -> BlockConfig:
        return BlockConfig(dim=self.dim, n_heads=self.n_head, mlp_hidden=self.mlp_hidden,
                           activation=self.activation, norm="layernorm", norm_eps=self.norm_eps,
                           prenorm=self.prenorm, bias=True, dropout=self.dropout)


@dataclass
class FusionOutput:
    hidden: torch.Tensor                 # (B, T + 1 + N, C) final hidden states, text first
    pooled: torch.Tensor | None          # (B, C) pooler output of the text CLS token
    text_len: int                        # T
    mask: torch.Tensor                   # (B, T + 1 + N) 1 = real token
    image_features: torch.Tensor | None  # (B, N, F) regression targets when asked for
    inputs: torch.Tensor | None = None   # (B, T + 1 + N, C) the stack's input tokens (word / region embeddings)
    boxes: torch.Tensor | None = None    # (B, N, 4) region boxes (x0, y0, x1, y1) in [0, 1]: regions models only

    @property
    def text_hidden(self) -> torch.Tensor:  # (B, T, C)
        return self.hidden[:, :self.text_len]

    @property
    def grid_hidden(self) -> torch.Tensor:  # (B, N, C) image grid tokens (image CLS excluded)
        return self.hidden[:, self.text_len + 1:]


class FusionModel(nn.Module):
    """`model(input_ids, pixel_values, attention_mask=, pixel_mask=) -> FusionOutput`; heads via
    `mlm_logits`, `itm_logits`, `mif_predictions`, `vqa_logits` (each takes the FusionOutput)."""

    def __init__(self, config: FusionConfig):
        super().__init__()
        self.config = c = config
        self.text = TextEmbeddings(c.vocab_size, c.dim, c.max_text_len, c.type_vocab_size, c.norm_eps, c.dropout)
        if c.image_encoder == "regions":
            stem = RegionStem(c.regions, c.cnn, c.dim, c.image_mean, c.image_std)
            self.image = RegionTokens(stem, c.dim, c.dropout, mask_token=c.mif_head, eps=c.norm_eps)
        else:
            stem = PatchStem(c.channels, c.dim, c.patch_size) if c.image_encoder == "patch" else CNNStem(c.cnn, c.dim)
            self.image = ImageTokens(stem, c.dim, c.grid, c.dropout, mask_token=c.mif_head)
        self.modality = nn.Embedding(c.modality_types, c.dim)
        self.blocks = nn.ModuleList(transformer_block(c.block_config()) for _ in range(c.n_layer))
        self.ln_f = make_norm("layernorm", c.dim, c.norm_eps) if c.prenorm else nn.Identity()
        self.pooler = Pooler(c.dim, c.pool) if c.pooler else None
        self.mlm = MLMHead(c.dim, c.vocab_size, c.activation, c.norm_eps, decoder_bias=True) if c.mlm_head else None
        self.itm = nn.Linear(c.dim, 2) if c.itm_head else None
        self.mif = nn.Linear(c.dim, stem.feature_dim) if c.mif_head else None
        self.vqa_readout = RegionReadout(c.dim, c.vqa_queries, c.classifier_eps, 2 * c.dim, c.vqa_roles, c.max_text_len,
                                         c.vqa_geometry) \
            if c.answers and c.vqa_readout == "regions" else None
        width = c.dim * (self.vqa_readout.out_dim_factor if self.vqa_readout is not None else 1)
        self.vqa_head = vqa_classifier(c.dim, len(c.answers), c.classifier_eps, width) if c.answers else None
        self.itc = nn.ModuleDict({"text": nn.Linear(c.dim, c.itc_dim), "image": nn.Linear(c.dim, c.itc_dim)}) \
            if c.itc_head else None
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07))) if c.itc_head else None
        for name, m in self.named_modules():  # CNN (Kaiming) and geometry MLP keep PyTorch's initialisation
            if not name.startswith(("image.stem.cnn", "image.stem.geometry")):
                init_normal(m)
        for p in (self.image.cls, getattr(self.image, "pos", None)):
            if p is not None:
                nn.init.normal_(p, std=0.02)
        if self.mlm is not None:
            self.mlm.decoder.weight = self.text.word_emb.weight

    @property
    def num_image_tokens(self) -> int:
        return self.config.image_token_count(self.config.image_size, self.config.image_size) + 1

    def embed_text(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) -> (B, T, C) text tokens with the text modality embedding."""
        return self.text(input_ids, token_type_ids) + self.modality(torch.zeros_like(input_ids))

    def embed_image(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None,
                    image_token_mask: torch.Tensor | None = None, with_features: bool = False,
                    boxes: torch.Tensor | None = None, box_mask: torch.Tensor | None = None):
        """(B, 3, H, W) -> tokens (B, 1 + N, C) with the image modality embedding, key mask (B, 1 + N),
        stem features (B, N, F) or None. `boxes` (B, R, 4) / `box_mask` (B, R): regions models only."""
        if boxes is not None and self.config.image_encoder != "regions":
            raise ValueError(f"boxes are only used by image_encoder='regions', not {self.config.image_encoder!r}")
        extra = {"boxes": boxes, "box_mask": box_mask} if boxes is not None else {}
        img, mask, feats = self.image(pixel_values, pixel_mask, image_token_mask, with_features, **extra)
        return img + self.modality(torch.ones_like(mask)), mask, feats

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The shared bidirectional stack: (B, S, C) tokens, (B, S) 1/0 key mask -> (B, S, C)."""
        attn = combine(padding_mask(mask))  # (B, 1, 1, S)
        x = run_blocks(self.blocks, x, BlockInputs(attn_mask=attn))
        return self.ln_f(x)

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor,
                attention_mask: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                pixel_mask: torch.Tensor | None = None, image_token_mask: torch.Tensor | None = None,
                with_image_features: bool = False, boxes: torch.Tensor | None = None,
                box_mask: torch.Tensor | None = None) -> FusionOutput:
        # input_ids (B, T); pixel_values (B, 3, H, W); attention_mask (B, T); pixel_mask (B, H, W);
        # image_token_mask (B, N) bool: image tokens replaced by the image mask token (masked-feature loss);
        # boxes (B, R, 4) in [0, 1], box_mask (B, R): regions given to a regions model (default: proposed)
        B, T = input_ids.shape
        if pixel_values.shape[0] != B:
            raise ValueError(f"batch of {B} texts but {pixel_values.shape[0]} images")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.config.image_encoder == "regions" and boxes is None:  # proposed here so the heads can see them
            stem = self.image.stem
            boxes, box_mask = propose_boxes(pixel_values, pixel_mask, stem.cfg, stem.mean, stem.std)
        img, img_mask, feats = self.embed_image(pixel_values, pixel_mask, image_token_mask, with_image_features,
                                                boxes, box_mask)
        x0 = torch.cat([self.embed_text(input_ids, token_type_ids), img], dim=1)  # (B, S, C)
        mask = torch.cat([attention_mask.long(), img_mask], dim=1)  # (B, S)
        x = self.encode(x0, mask)
        pooled = self.pooler(x, attention_mask) if self.pooler is not None else None
        return FusionOutput(x, pooled, T, mask, feats, x0, boxes)

    def contrastive_embeddings(self, input_ids: torch.Tensor, pixel_values: torch.Tensor,
                               attention_mask: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None):
        """Unimodal passes through the same stack (text alone, image alone) -> L2-normalised (B, D) text and
        image embeddings of their first tokens, for image-text contrastive learning (ALBEF's ITC)."""
        itc = self._need(self.itc, "image-text contrastive")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        txt = self.encode(self.embed_text(input_ids), attention_mask.long())[:, 0]  # (B, C)
        img, img_mask, _ = self.embed_image(pixel_values, pixel_mask)
        img = self.encode(img, img_mask)[:, 0]  # (B, C) image CLS
        return F.normalize(itc["text"](txt), dim=-1), F.normalize(itc["image"](img), dim=-1)

    def _need(self, head: nn.Module | None, name: str) -> nn.Module:
        if head is None:
            raise ValueError(f"this fusion model has no {name} head (enable it in the config)")
        return head

    def mlm_logits(self, out: FusionOutput) -> torch.Tensor:  # (B, T, V)
        return self._need(self.mlm, "masked-LM")(out.text_hidden)

    def itm_logits(self, out: FusionOutput) -> torch.Tensor:  # (B, 2): [no match, match]
        return self._need(self.itm, "image-text matching")(out.pooled)

    def mif_predictions(self, out: FusionOutput) -> torch.Tensor:  # (B, N, F)
        return self._need(self.mif, "masked image-feature")(out.grid_hidden)

    def readout_inputs(self, out: FusionOutput) -> tuple[torch.Tensor, ...]:
        """Text (B, T, 2C), text mask (B, T), image tokens without the image CLS (B, N, 2C), their mask (B, N):
        each token's final state beside its stack input (what the stack made and what it read)."""
        T = out.text_len
        both = torch.cat([out.hidden, out.inputs], dim=-1)  # (B, S, 2C)
        return both[:, :T], out.mask[:, :T], both[:, T + 1:], out.mask[:, T + 1:]

    def vqa_features(self, out: FusionOutput) -> torch.Tensor:
        """The classifier's input: the pooled vector (B, C), or with the region readout (B, (K + 1) C)."""
        if self.vqa_readout is None:
            return out.pooled
        return self.vqa_readout(*self.readout_inputs(out), out.pooled, out.boxes)

    def vqa_logits(self, out: FusionOutput) -> torch.Tensor:  # (B, A)
        return self._need(self.vqa_head, "VQA classifier")(self.vqa_features(out))

    def vqa_probs(self, out: FusionOutput) -> torch.Tensor:  # (B, A): sigmoid scores or a softmax distribution
        logits = self.vqa_logits(out).float()
        return logits.softmax(-1) if self.config.vqa_loss == "softmax" else logits.sigmoid()


register_family("fusion", FusionConfig, FusionModel, "single-stream image+text Transformer (VL-BERT / ViLT)")
register_preset("vilt-b-32", "fusion", "ViLT-B/32 sizes: 12 layers, width 768, 384px images, 32px patches",
                dim=768, n_layer=12, n_head=12, mlp_hidden=3072, image_size=384, patch_size=32)
FUSION_SMALL = dict(dim=128, n_layer=4, n_head=4, mlp_hidden=512, image_size=64, image_encoder="regions",
                    cnn=dict(stem_width=32, stem_stride=1, widths=[32, 64], depths=[1, 1]),
                    regions=dict(max_regions=6, crop=16, norm=True, fourier=4), max_text_len=32, norm_eps=1e-6,
                    prenorm=False, pool="text_mean", vqa_readout="regions")
register_preset("fusion-small", "fusion", "CPU size, VL-BERT-style region tokens: 4 post-norm layers, width 128, "
                "64px images, up to 6 proposed regions cropped to 16px for a small ResNet, text-mean pooling, VQA head "
                "with 4 question-conditioned region readers", **FUSION_SMALL)
register_preset("fusion-small-roles", "fusion", "fusion-small whose region readers take subject and object by word "
                "order and read their boxes (vqa_roles='order', vqa_geometry): position questions; pretrain it first "
                "(docs/vqa.md)", **FUSION_SMALL, vqa_roles="order", vqa_geometry=True)
register_preset("fusion-small-grid", "fusion", "CPU size with CNN grid tokens: 4 layers, width 128, 64px images, "
                "ResNet grid features 4x4", dim=128, n_layer=4, n_head=4, mlp_hidden=512, image_size=64,
                image_encoder="cnn", cnn=dict(stem_width=32, stem_stride=4, widths=[32, 64, 128], depths=[1, 1, 1]),
                max_text_len=32, norm_eps=1e-6)
register_preset("fusion-small-patch", "fusion", "CPU size with ViT patches: 4 layers, width 128, 64px, 8px",
                dim=128, n_layer=4, n_head=4, mlp_hidden=512, image_size=64, patch_size=8, max_text_len=32,
                norm_eps=1e-6)
register_preset("fusion-tiny", "fusion", "tests: 2 layers, width 32, 32px images, 8px patches",
                dim=32, n_layer=2, n_head=4, mlp_hidden=64, image_size=32, patch_size=8, max_text_len=24,
                vocab_size=128)
