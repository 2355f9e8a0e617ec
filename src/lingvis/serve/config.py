"""Server settings shared by the app, the adapters and the CLI."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"             # loopback unless told otherwise
    port: int = 8000
    api_key: str | None = None          # when set, every /v1 request needs `Authorization: Bearer KEY`
    max_queue: int = 64                 # requests waiting for a generation slot (or in flight, for other work)
    max_batch: int = 32                 # sequences decoded together in one forward pass
    max_body_bytes: int = 8 * 2**20     # request body limit (images arrive as base64 data URLs)
    max_image_pixels: int = 4096 * 4096  # decoded image limit (width * height)
    max_top_logprobs: int = 20
    max_n: int = 16                     # completions per prompt
    image_folder: Path | None = None    # folder searched by /v1/images/search
    device: str = "auto"                # auto: cuda, then mps, then cpu (lingvis.devices.resolve_device)
    int8: str | None = None             # causal LMs on CPU: "weights" (weight-only) or "w8a8" (dynamic)
    allowed_origins: list[str] = field(default_factory=list)  # CORS: browser origins allowed to call the API
    allow_image_hosts: list[str] = field(default_factory=list)  # hosts whose http(s) image URLs chats may use
    max_image_bytes: int = 8 * 2**20    # fetched remote image limit
    video_folder: Path | None = None    # folder searched by /v1/videos/search (video CLIP models)
    max_video_bytes: int = 64 * 2**20   # decoded video_url / video request limit (data URLs count against the body)
    video_frames: int = 4               # frames an image-chat model sees of each video_url part
    kg: object | None = None            # routes_kg.KGEndpointConfig: a knowledge graph at /v1/kg/sparql
    speculative: str | None = None      # causal LMs: "prompt-lookup" proposals for a row decoding alone
    draft: Path | None = None           # causal LMs: a smaller model (same tokenizer) proposing for a row alone
    draft_tokens: int | None = None     # tokens proposed per verifying forward pass (default: 8 lookup, 8 draft)

    def resolved_device(self):
        """The torch device models load on: `auto` resolves as everywhere in lingvis, except that int8
        decoding (CPU only) makes `auto` mean the CPU."""
        from ..devices import AUTO, resolve_device

        return resolve_device("cpu" if self.int8 and str(self.device).lower() == AUTO else self.device)

    def validate(self) -> None:
        from ..quant import INT8_MODES

        if self.int8 is not None and self.int8 not in INT8_MODES:
            raise ValueError(f"int8 must be one of {sorted(INT8_MODES)}, got {self.int8!r}")
        if self.int8 and str(self.device).lower() not in ("auto", "cpu"):
            raise ValueError(f"int8 decoding is for CPU serving, not {self.device}: drop --int8 or use --device cpu")
        self.resolved_device()  # an unknown or absent device fails here, before any model loads
        for origin in self.allowed_origins:
            if origin != "*" and (not origin.startswith(("http://", "https://")) or origin.endswith("/")):
                raise ValueError(f"allowed origin {origin!r} must be '*' or scheme://host[:port] without a "
                                 "trailing slash (as browsers send it)")
        for host in self.allow_image_hosts:
            if not host or any(c in host for c in "/:@ ") or host == "*":
                raise ValueError(f"allowed image host {host!r} must be a bare host name (e.g. images.example.com)")
        for name in ("max_queue", "max_batch", "max_body_bytes", "max_image_pixels", "max_n", "max_image_bytes",
                     "max_video_bytes", "video_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.speculative is not None and self.speculative != "prompt-lookup":
            raise ValueError(f"speculative must be 'prompt-lookup', got {self.speculative!r}")
        if self.speculative and self.draft:
            raise ValueError("--speculative prompt-lookup and --draft are alternatives: pick one")
        if self.draft_tokens is not None and not (self.speculative or self.draft):
            raise ValueError("--draft-tokens goes with --draft or --speculative")
        if self.draft_tokens is not None and self.draft_tokens < 1:
            raise ValueError(f"draft_tokens must be >= 1, got {self.draft_tokens}")
        if self.draft is not None and not Path(self.draft).exists():
            raise FileNotFoundError(f"--draft {self.draft} does not exist")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.image_folder is not None and not Path(self.image_folder).is_dir():
            raise FileNotFoundError(f"--image-folder {self.image_folder} is not a folder")
        if self.video_folder is not None and not Path(self.video_folder).is_dir():
            raise FileNotFoundError(f"--video-folder {self.video_folder} is not a folder")
