"""`lingvis tokenizer train`."""
from __future__ import annotations


def register(sub, groups) -> None:
    t = sub.add_parser("tokenizer", help="train tokenizers").add_subparsers(dest="action", metavar="ACTION")
    p = t.add_parser("train", help="train a char, byte-level BPE or WordPiece tokenizer from text files",
                     description="Train a tokenizer and save tokenizer.json (+ tokenizer_config.json).")
    p.add_argument("files", nargs="*", help="text/JSONL files or folders (default: built-in Shakespeare)")
    p.add_argument("--kind", choices=["char", "bpe", "wordpiece"], default="bpe",
                   help="characters, byte-level BPE (GPT-2 style) or WordPiece (BERT style)")
    p.add_argument("--vocab-size", type=int, default=8000, help="vocabulary size (BPE and WordPiece)")
    p.add_argument("--lowercase", action="store_true", help="WordPiece: lower-case and strip accents")
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import tokenizers as tk
    from ..data.corpus import shakespeare_plays
    from ..data.text import read_texts

    texts = [t for f in args.files for t in read_texts(f, args.text_field)] if args.files else \
        [p.text for p in shakespeare_plays()]
    if args.kind == "char":
        tok = tk.train_char(texts)
    elif args.kind == "bpe":
        tok = tk.train_bpe(texts, args.vocab_size)
    else:
        if not hasattr(tk, "train_wordpiece"):
            raise ValueError("WordPiece training is not available in this build")
        tok = tk.train_wordpiece(texts, args.vocab_size, lowercase=args.lowercase)
    tok.save(args.out)
    print(f"trained {args.kind} tokenizer with {tok.vocab_size} tokens -> {args.out}")
    return 0
