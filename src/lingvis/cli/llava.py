"""`lingvis pretrain llava` (stage 1), `lingvis finetune llava` (stage 2), `lingvis evaluate llava-shapes`."""
from __future__ import annotations

import argparse

from .common import add_train_args, print_json, train_config


def register(sub, groups) -> None:
    p = groups["pretrain"].add_parser(
        "llava", help="LLaVA stage 1: train a projector between a frozen vision tower and a frozen LM on captions",
        description="Join a vision tower (--vision: a lingvis ViT/CLIP/captioner run or an HF CLIP folder) and a "
        "causal LM (--llm: a lingvis GPT run or an HF Llama-family folder) with a new projector and train only the "
        "projector to caption images. --data takes image-caption data (COCO captions JSON, JSONL, CSV, webdataset, "
        "class folder); without it the built-in shapes scenes are used.")
    add_train_args(p, max_steps=1000, batch_size=32, lr=2e-3, eval_every=250, warmup=50)
    p.add_argument("--vision", help="vision tower folder: a lingvis ViT or CLIP run, a lingvis captioner run "
                   "with a ViT encoder, or a Hugging Face CLIP folder")
    p.add_argument("--llm", help="language model folder: a lingvis GPT run or a Hugging Face Llama-family folder "
                   "(its tokenizer gains an <image> token)")
    p.add_argument("--projector", default="mlp2x_gelu",
                   help="projector: mlp2x_gelu (LLaVA-1.5), mlp<N>x_<act> or linear")
    p.add_argument("--vision-feature-layer", type=int, default=-2,
                   help="hidden state of the tower read as image features (HF counting; -2: the penultimate layer)")
    p.add_argument("--vision-feature-select-strategy", choices=["default", "full"], default="default",
                   help="default: drop the class token; full: keep it")
    p.add_argument("--spatial-merge", type=int, default=1, help="merge each M x M block of neighbouring patches "
                   "into one image token before the projector (Qwen2-VL style; lingvis-only, no HF export)")
    p.add_argument("--image-position", choices=["none", "rowcol", "onehot"], default="none",
                   help="rowcol: learned row and column embeddings added to the projected image tokens; onehot: "
                   "fixed one-hot row and column features at the projector input (lingvis-only, no HF export)")
    _data_args(p)
    p.set_defaults(func=run_pretrain)

    f = groups["finetune"].add_parser(
        "llava", help="LLaVA stage 2: instruction-tune projector + LM on conversations with images",
        description="Fine-tune a LLaVA model (--model: the stage-1 run or a llava folder) on LLaVA conversation JSON "
        "([{id, image, conversations: [{from: human|gpt, value}]}], '<image>\\n' in the first human turn; rows "
        "without image are text-only). The loss covers assistant tokens only. Projector and LM train (with --lora "
        "or --lora-rank: projector and LoRA adapters on the LM); the tower stays frozen unless --train-vision. "
        "Without --data: the built-in shapes instruction set.")
    add_train_args(f, max_steps=1000, batch_size=32, lr=1e-3, eval_every=250, warmup=50)
    f.add_argument("--lora", action="store_true", help="train LoRA adapters of rank 8 on the LM instead of all of "
                   "its weights (same as --lora-rank 8)")
    f.add_argument("--train-vision", action="store_true", help="train the vision tower too (LLaVA-NeXT style; "
                   "default: frozen)")
    f.add_argument("--split-words", default=None, metavar="A/B,C/D", help="first split the nearly equal "
                   "embeddings of these one-token word pairs (e.g. left/right,above/below), which text-only "
                   "pretraining leaves close")
    _data_args(f)
    f.set_defaults(func=run_finetune)

    e = groups["evaluate"].add_parser(
        "llava-shapes", help="image-chat accuracy of a llava model on held-out shapes scenes",
        description="Asks a llava model the shapes instruction set's questions about held-out scenes: key-word "
        "accuracy per question kind, POPE-style yes/no metrics, follow-ups and description CIDEr-D.")
    e.add_argument("--model", required=True, help="llava model or run folder")
    e.add_argument("--split", default="test", choices=["val", "test", "test_unseen"], help="held-out scenes")
    e.add_argument("--n", type=int, default=200, help="number of scenes")
    e.add_argument("--no-image", action="store_true", help="ask without the image (the text-only baseline)")
    e.add_argument("--seed", type=int, default=0, help="seed of the built-in scenes")
    e.set_defaults(func=run_evaluate)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-data", help="held-out data in the same format (default: a split of --data by image)")
    p.add_argument("--image-root", help="folder of the image paths in --data (default: the data file's folder)")
    p.add_argument("--n-train", type=int, default=3000, help="built-in shapes scenes for training (without --data)")
    p.add_argument("--val-fraction", type=float, default=0.02, help="share of --data images held out for validation")


def _args(a, **extra):
    from ..recipes.llava import LlavaArgs

    if a.preset:
        raise ValueError("llava has no --preset here: stage 1 joins --vision and --llm, stage 2 starts from --model")
    return LlavaArgs(out=a.out, data=a.data, val_data=a.val_data, image_root=a.image_root, model=a.model,
                     n_train=a.n_train, val_fraction=a.val_fraction, seed=a.seed, **extra)


def run_pretrain(a) -> int:
    from ..recipes.llava import pretrain_llava

    args = _args(a, vision=a.vision, llm=a.llm, projector=a.projector, vision_feature_layer=a.vision_feature_layer,
                 vision_feature_select_strategy=a.vision_feature_select_strategy, spatial_merge=a.spatial_merge,
                 image_position=a.image_position)
    print_json(pretrain_llava(args, train_config(a), resume=a.resume))
    return 0


def run_finetune(a) -> int:
    from ..recipes.llava import finetune_llava

    if a.lora and not a.lora_rank:
        a.lora_rank = 8
    print_json(finetune_llava(_args(a, train_vision=a.train_vision, split_words=a.split_words), train_config(a),
                              resume=a.resume))
    return 0


def run_evaluate(a) -> int:
    from .. import api
    from ..recipes.llava_eval import evaluate_shapes_chat

    model, tok = api.load(a.model), api.load_tokenizer(a.model)
    print_json(evaluate_shapes_chat(model, tok, a.split, a.n, a.seed, with_image=not a.no_image))
    return 0
