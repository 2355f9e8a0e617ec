"""`lingvis pretrain gpt`, `lingvis generate`, `lingvis chat`."""
from __future__ import annotations

import argparse
import sys

from .common import add_device_arg, add_train_args, device_for, print_json, train_config


def register(sub, groups) -> None:
    p = groups["pretrain"].add_parser("gpt", help="pretrain a GPT on text files or the built-in Shakespeare",
                                      description="Pretrain a causal GPT. Without --data it trains on the "
                                      "embedded ~1 MB Shakespeare corpus. Without --preset, the model shape, "
                                      "context, batch size and learning rate are the ones a sweep found best for "
                                      "the --max-minutes budget (docs/training.md).")
    add_train_args(p, max_steps=2000, batch_size=None, lr=None, eval_every=250, warmup=None)
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")
    p.add_argument("--tokenizer", default="char", help="char | bpe | path to a tokenizer.json or folder")
    p.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary size")
    p.add_argument("--block-size", type=int,
                   help="context length (default: the preset's; without --preset, chosen for the budget)")
    p.add_argument("--stride", type=int, help="train on windows starting every N tokens (1: every offset) "
                   "instead of non-overlapping blocks (default: chosen for the budget)")
    p.add_argument("--dropout", type=float, help="model dropout (default: the preset's or checkpoint's)")
    p.add_argument("--samples", type=int, default=2, help="samples to print after training")
    p.set_defaults(func=run_pretrain)

    g = sub.add_parser("generate", help="continue a prompt", description="Continue a prompt with a causal LM.")
    add_sampling_args(g)
    g.add_argument("--prompt", action="append", required=True, help="prompt text (repeat for a batch)")
    g.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    g.set_defaults(func=run_generate)

    c = sub.add_parser("chat", help="multi-turn chat in the terminal (streams replies)",
                       description="Chat with a model using its tokenizer's chat template. /reset clears "
                       "the history, /quit (or EOF) leaves.")
    add_sampling_args(c, max_new=200, temperature=0.7)
    c.add_argument("--system", help="system message")
    c.add_argument("--image", action="append", default=[], metavar="PATH",
                   help="image for an image-chat (llava) model, attached to your first message (repeatable; "
                   "/image PATH attaches one later)")
    c.add_argument("--video", action="append", default=[], metavar="PATH",
                   help="video for an image-chat (llava) model: --video-frames frames sampled evenly across it "
                   "become images attached to your first message, in time order (repeatable; /video PATH later)")
    c.add_argument("--video-frames", type=int, default=4, help="frames taken from each --video / /video")
    c.set_defaults(func=run_chat)


def add_sampling_args(p: argparse.ArgumentParser, max_new: int = 64, temperature: float = 0.0) -> None:
    p.add_argument("--model", required=True, help="checkpoint or run folder")
    p.add_argument("--max-new-tokens", type=int, default=max_new, help="most tokens to generate per prompt")
    p.add_argument("--temperature", type=float, default=temperature, help="sampling temperature; 0 = greedy")
    p.add_argument("--top-k", type=int, help="sample only from the k most likely tokens (default: all)")
    p.add_argument("--top-p", type=float, help="nucleus sampling: the smallest set of tokens with this much "
                   "probability (default: off)")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="penalise tokens already in the text (CTRL-style; > 1 discourages repeats)")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--seed", type=int, help="sampling seed for reproducible output (default: random)")
    p.add_argument("--overflow", choices=["slide", "error"], default="slide",
                   help="when prompt + new tokens exceed the context: slide a window (default) or fail")
    p.add_argument("--compile", action="store_true", help="decode through a torch.compile'd static-cache "
                   "step (GPT-family models; compiling takes about a minute on 2 cores, once per model and cache "
                   "size: worth it for long or repeated generations)")
    add_device_arg(p)
    p.add_argument("--int8", choices=["weights", "w8a8"],  # quant.INT8_MODES
                   help="CPU int8 decoding: int8 weights (weight-only) or weights and activations (W8A8 dynamic)")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--draft", metavar="MODEL", help="speculative decoding with this smaller draft model (same "
                   "tokenizer): same greedy output, sampled output distributed as without it; one prompt at a "
                   "time, no sliding past the context")
    s.add_argument("--speculative", choices=["prompt-lookup"], help="speculative decoding with proposals "
                   "copied from earlier in the text (n-gram lookup): fast when the output repeats its input")
    p.add_argument("--draft-tokens", type=int, help="tokens proposed per forward pass with --draft / "
                   "--speculative (default: 8)")


def _load(args):
    """(model, tokenizer) from --model, quantised to int8 when --int8 asks for it."""
    from .. import api

    device = device_for(args.device, cpu_only="--int8" if args.int8 else None)
    model, tok = api.load(args.model, device=device), api.load_tokenizer(args.model)
    if args.int8:
        from ..quant import quantize_int8_mode

        model = quantize_int8_mode(model, args.int8)
    return model, tok


def _speculative(args, model) -> dict:
    """speculative= / num_draft_tokens= for `generate` from --draft / --speculative / --draft-tokens."""
    from .. import api

    if args.draft_tokens is not None and not (args.draft or args.speculative):
        raise ValueError("--draft-tokens goes with --draft or --speculative")
    spec = args.speculative
    if args.draft:
        spec = api.load(args.draft, device=next(model.parameters()).device)
        if args.int8:
            from ..quant import quantize_int8_mode

            spec = quantize_int8_mode(spec, args.int8)
    if spec is not None and args.overflow == "slide":
        args.overflow = "error"  # speculative decoding does not slide: say so when the text would not fit
    return {} if spec is None else dict(speculative=spec, num_draft_tokens=args.draft_tokens)


def _sampling(args) -> dict:
    return dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                top_p=args.top_p, repetition_penalty=args.repetition_penalty, stop=args.stop, seed=args.seed,
                overflow=args.overflow, compile=args.compile)


def apply_budget_defaults(args) -> None:
    """Fill the options left unset (batch size, lr, warmup, min lr, beta2, optimizer, stride) from the defaults the
    sweep chose for the --max-minutes budget (lingvis.recipes.gpt.BUDGET_DEFAULTS)."""
    from ..recipes.gpt import defaults_for

    d = defaults_for(args.max_minutes)
    for name in ("batch_size", "lr", "warmup_steps", "min_lr", "beta2", "optimizer", "stride"):
        if getattr(args, name, None) is None:
            setattr(args, name, getattr(d, name))


def run_pretrain(args) -> int:
    from .. import api, generate
    from ..recipes.gpt import GPTPretrainArgs, pretrain_gpt

    apply_budget_defaults(args)
    overrides = {"dropout": args.dropout} if args.dropout is not None else {}
    pargs = GPTPretrainArgs(out=args.out, data=args.data, text_field=args.text_field, preset=args.preset,
                            model=args.model, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                            block_size=args.block_size, stride=args.stride, overrides=overrides)
    summary = pretrain_gpt(pargs, train_config(args), resume=args.resume)
    print_json(summary)
    model, tok = api.load(args.out), api.load_tokenizer(args.out)
    for i in range(args.samples):
        text = generate(model, tok, "\n", max_new_tokens=200, temperature=0.8, top_k=50, seed=i,
                        overflow="slide")
        print(f"--- sample {i + 1} ---\n{text}")
    return 0


def run_generate(args) -> int:
    from .. import generate

    model, tok = _load(args)
    spec = _speculative(args, model)
    if args.stream:
        for prompt in args.prompt:
            for piece in generate(model, tok, prompt, stream=True, **_sampling(args), **spec):
                print(piece, end="", flush=True)
            print()
        return 0
    outs = generate(model, tok, args.prompt, **_sampling(args), **spec)
    print("\n".join(outs))
    return 0


def run_chat(args) -> int:
    from .. import generate
    from ..data.llava_inputs import reads_images

    model, tok = _load(args)
    if args.image or args.video or reads_images(model):
        from .image_chat import run_image_chat

        return run_image_chat(model, tok, args, _sampling(args))
    spec = _speculative(args, model)
    history = [{"role": "system", "content": args.system}] if args.system else []
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() == "/quit":
            return 0
        if line.strip() == "/reset":
            history = history[:1] if args.system else []
            continue
        history.append({"role": "user", "content": line.rstrip("\n")})
        prompt = fit_chat_prompt(tok, history, _chat_budget(model, args), keep=1 if args.system else 0)
        if prompt is None:
            history.pop()
            print("error: that message does not fit in the model's context "
                  f"({model.context_length} tokens); send a shorter one or /reset", file=sys.stderr)
            continue
        print("assistant> ", end="", flush=True)
        reply = []
        for piece in generate(model, tok, prompt, stream=True, **_sampling(args), **spec):
            reply.append(piece)
            print(piece, end="", flush=True)
        print()
        history.append({"role": "assistant", "content": "".join(reply)})


def _chat_budget(model, args) -> int:
    """Most prompt tokens a turn may use: the context less the reply (sliding) or less one token."""
    reserve = args.max_new_tokens if args.overflow == "error" else 1
    return model.context_length - reserve


def fit_chat_prompt(tok, history: list[dict], budget: int, keep: int = 0) -> str | None:
    """The chat prompt for `history`, dropping its oldest exchanges (in place; the first `keep` messages,
    the system message, always stay) until it encodes to at most `budget` tokens. None if even the newest
    message alone does not fit."""
    while True:
        prompt = tok.apply_chat_template(history, add_generation_prompt=True)
        if len(tok.encode(prompt)) <= budget:
            return prompt
        if len(history) - keep <= 1:
            return None
        del history[keep]  # the oldest user message and the reply to it
        if len(history) - keep > 1 and history[keep]["role"] == "assistant":
            del history[keep]
