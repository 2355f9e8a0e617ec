"""`lingvis convert`: Hugging Face <-> lingvis checkpoint folders."""
from __future__ import annotations


def register(sub, groups) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint folder (HF <-> lingvis)",
                       description="Load any checkpoint lingvis reads (HF folder, lingvis folder, run folder) "
                       "and write it as Hugging Face files (--to hf) or lingvis native files (--to lingvis).")
    p.add_argument("src", help="source folder")
    p.add_argument("dst", help="destination folder (replaced atomically)")
    p.add_argument("--to", choices=["auto", "hf", "lingvis"], default="auto",
                   help="hf: Hugging Face files (error if the family has none); lingvis: native files; "
                   "auto: Hugging Face where the family and config have a counterpart")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import api
    from ..io import CheckpointError

    model = api.load(args.src)
    try:
        tok = api.load_tokenizer(args.src)
    except (CheckpointError, FileNotFoundError, ValueError):
        tok = None
    api.save(model, args.dst, tokenizer=tok, format=args.to)
    print(f"wrote {args.dst}")
    return 0
