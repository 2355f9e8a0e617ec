"""`lingvis serve`: an OpenAI-compatible HTTP server (and a web page) for lingvis models."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub, groups) -> None:
    p = sub.add_parser("serve", help="serve models over an OpenAI-compatible HTTP API with a web page",
                       description="Serve one or more models: /v1/completions, /v1/chat/completions (streaming), "
                       "/v1/embeddings, /v1/models, vision endpoints under /v1/images/, and a page at /.")
    p.add_argument("--model", action="append", required=True, metavar="[NAME=]DIR",
                   help="checkpoint, run or Hugging Face folder; repeat for several models (name defaults to "
                   "the folder name)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every API request "
                   "(default: the LINGVIS_API_KEY environment variable, if set)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting per model before 429")
    p.add_argument("--max-batch", type=int, default=32, help="sequences decoded together per forward pass")
    p.add_argument("--max-body-mb", type=float, default=8.0, help="request body limit in MiB")
    p.add_argument("--max-image-pixels", type=int, default=4096 * 4096, help="decoded image limit (w*h)")
    p.add_argument("--image-folder", help="folder of images for text-to-image search (CLIP models)")
    p.add_argument("--video-folder", help="folder of videos for text-to-video search (video CLIP models)")
    p.add_argument("--video-frames", type=int, default=4,
                   help="frames an image-chat model sees of each video_url part in chat (evenly sampled)")
    p.add_argument("--device", default="auto",
                   help="device for the models: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps "
                   "(default: auto; with --int8, auto means cpu)")
    p.add_argument("--allowed-origins", action="append", default=[], metavar="ORIGIN[,ORIGIN...]",
                   help="browser origins allowed to call the API from other sites (CORS), e.g. "
                   "https://app.example.com; '*' for any; repeat or separate with commas (default: none)")
    p.add_argument("--allow-image-hosts", action="append", default=[], metavar="HOST[,HOST...]",
                   help="hosts whose http(s) image URLs image chats may use; the server fetches them (no redirects, "
                   "within --max-image-mb); repeat or separate with commas (default: none, data: URLs only)")
    p.add_argument("--max-image-mb", type=float, default=8.0, help="size limit of a fetched remote image in MiB")
    p.add_argument("--int8", choices=["weights", "w8a8"],  # quant.INT8_MODES
                   help="serve causal LMs with int8 CPU decoding: int8 weights, or weights and activations")
    spec = p.add_mutually_exclusive_group()
    spec.add_argument("--speculative", choices=["prompt-lookup"], help="causal LMs: speculative decoding with "
                      "prompt-lookup proposals whenever one request decodes alone (greedy output unchanged)")
    spec.add_argument("--draft", metavar="MODEL", help="causal LMs: speculative decoding with this smaller draft "
                      "model (same tokenizer) whenever one request decodes alone")
    p.add_argument("--draft-tokens", type=int, help="tokens proposed per verifying forward pass with --draft / "
                   "--speculative (default: 4 for a draft model, 8 for prompt lookup)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn log level")
    p.set_defaults(func=run_serve)


def split_origins(values: list[str]) -> list[str]:
    return [o.strip() for v in values for o in v.split(",") if o.strip()]


def run_serve(args) -> int:
    import os

    from .._optional import require

    require("fastapi", "the server")
    uvicorn = require("uvicorn", "the server")
    from ..serve import ServeConfig, create_app, load_models

    config = ServeConfig(host=args.host, port=args.port, api_key=args.api_key or os.environ.get("LINGVIS_API_KEY"),
                         max_queue=args.max_queue, max_batch=args.max_batch,
                         max_body_bytes=int(args.max_body_mb * 2**20), max_image_pixels=args.max_image_pixels,
                         image_folder=Path(args.image_folder) if args.image_folder else None, device=args.device,
                         int8=args.int8, allowed_origins=split_origins(args.allowed_origins),
                         allow_image_hosts=split_origins(args.allow_image_hosts),
                         max_image_bytes=int(args.max_image_mb * 2**20),
                         video_folder=Path(args.video_folder) if args.video_folder else None,
                         video_frames=args.video_frames, speculative=args.speculative,
                         draft=Path(args.draft) if args.draft else None, draft_tokens=args.draft_tokens)
    config.validate()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    adapters = load_models(args.model, config)
    app = create_app(adapters, config)
    names = ", ".join(f"{a.name} ({a.kind})" for a in adapters)
    print(f"serving {names} on http://{args.host}:{args.port}/ (API under /v1, metrics at /metrics) "
          f"on {config.resolved_device()}", file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        print("warning: listening beyond loopback without --api-key", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
