"""`lingvis convert`: Hugging Face <-> lingvis checkpoint folders; llama.cpp GGUF files; LoRA adapters in the
PEFT format."""
from __future__ import annotations


def register(sub, groups) -> None:
    p = sub.add_parser("convert", aliases=["save"], help="convert a checkpoint folder (HF <-> lingvis), or save a "
                       "LoRA run's adapters in the PEFT format (--adapter-only)",
                       description="Load any checkpoint lingvis reads (HF folder, lingvis folder, run folder, GGUF "
                       "file) and write it as Hugging Face files (--to hf), lingvis native files (--to lingvis) or "
                       "a llama.cpp GGUF file (--to gguf, or a DST ending in .gguf).")
    p.add_argument("src", help="source folder (or .gguf file)")
    p.add_argument("dst", help="destination folder, or .gguf file (replaced atomically)")
    p.add_argument("--to", choices=["auto", "hf", "lingvis", "gguf"], default="auto",
                   help="hf: Hugging Face files (error if the family has none); lingvis: native files; gguf: one "
                   "llama.cpp GGUF file (GPT-2 and the Llama family); auto: gguf for a DST ending in .gguf, else "
                   "Hugging Face where the family and config have a counterpart")
    p.add_argument("--dtype", choices=["f32", "f16", "q8_0"], default="f32",
                   help="with --to gguf: type of the weight matrices (norms and 1-D tensors stay f32; q8_0 = 8-bit "
                   "blocks of 32 with an fp16 scale)")
    p.add_argument("--no-tokenizer", action="store_true",
                   help="with --to gguf: leave the vocabulary out (llama.cpp then runs on token ids only), e.g. "
                   "for a character-level tokenizer, which llama.cpp has no counterpart for")
    p.add_argument("--adapter-only", action="store_true",
                   help="SRC is a LoRA checkpoint or run: write only its adapters to DST in the PEFT format "
                   "(adapter_config.json + adapter_model.safetensors), which peft.PeftModel.from_pretrained "
                   "loads on the Hugging Face export of the base model")
    p.add_argument("--base-out", metavar="DIR",
                   help="with --adapter-only: also write the base model (frozen weights, no adapters) to DIR as "
                   "Hugging Face files and name it in adapter_config.json (then `lingvis.load(DST)` works too)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import api
    from ..io import CheckpointError

    try:
        tok = api.load_tokenizer(args.src)
    except (CheckpointError, FileNotFoundError, ValueError):
        tok = None
    if args.adapter_only:
        from ..api import export_adapter

        export_adapter(args.src, args.dst, base_out=args.base_out, tokenizer=tok)
        print(f"wrote {args.dst}" + (f" and base model {args.base_out}" if args.base_out else ""))
        return 0
    if args.base_out:
        raise ValueError("--base-out goes with --adapter-only")
    model = api.load(args.src)
    if args.to == "gguf" or (args.to == "auto" and args.dst.endswith(".gguf")):
        from ..interop.gguf_export import export_gguf

        export_gguf(model, args.dst, tokenizer=None if args.no_tokenizer else tok, dtype=args.dtype)
        print(f"wrote {args.dst}")
        return 0
    if args.dtype != "f32":
        raise ValueError("--dtype applies to --to gguf only")
    api.save(model, args.dst, tokenizer=tok, format=args.to)
    print(f"wrote {args.dst}")
    return 0
