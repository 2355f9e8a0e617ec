"""Shared CLI pieces: training flags, config files with overrides, JSON output."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..train.config import TrainConfig


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help line ends with its default, unless it has none (None, False, []) or the help
    text already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shows_default(action) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def shows_default(action: argparse.Action) -> bool:
    """Whether `action` has a default worth printing in its help line."""
    d = action.default
    if d is None or d is False or d is argparse.SUPPRESS or (isinstance(d, (list, str)) and not d):
        return False
    return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


class Parser(argparse.ArgumentParser):
    """The `lingvis` parser class: subcommand parsers inherit it (argparse's `parser_class`), so every
    command's help shows defaults the same way."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def load_config_file(path: str) -> dict:
    """A YAML or JSON mapping of flag names (dashes or underscores) to values."""
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"error: config file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise SystemExit(f"error: {p} must hold a mapping of option names to values")
    return {k.replace("-", "_"): v for k, v in data.items()}


BY_BUDGET = " (default: chosen for the --max-minutes budget, see docs/training.md)"


def add_train_args(p: argparse.ArgumentParser, max_steps: int = 1000, batch_size: int | None = 16,
                   lr: float | None = 1e-3, eval_every: int = 200, warmup: int | None = 100) -> None:
    """The flags every `pretrain`/`finetune` command takes. A None default (batch size, lr, warmup) means
    the command picks one for the budget (its `run` function fills it in)."""
    _add_data_args(p)
    t = p.add_argument_group("training")
    _add_budget_args(t, max_steps)
    p.set_defaults(default_max_steps=max_steps)
    _add_optimizer_args(t, batch_size, lr, warmup)
    _add_run_args(p, t, eval_every)
    add_scale_args(p)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and model")
    g.add_argument("--data", help="training data path (default: built-in data)")
    g.add_argument("--out", help="run folder: checkpoints, metrics.jsonl, loss.png (required here or in --config)")
    p.set_defaults(needs_out=True)
    g.add_argument("--preset", help="model size preset (see `lingvis presets`)")
    g.add_argument("--model", help="start from this checkpoint folder instead of a preset")
    g.add_argument("--config", help="YAML/JSON file of option values; flags given on the command line win")


def _add_budget_args(t, max_steps: int) -> None:
    t.add_argument("--max-steps", type=int,
                   help=f"optimizer steps to train for (default: {max_steps}, or as many as fit in --max-minutes "
                   "when only a budget is given)")
    t.add_argument("--max-minutes", type=float,
                   help="wall-clock budget: the learning-rate schedule spans the steps that fit in it (measured "
                   "over the first steps; an explicit --max-steps caps them), then a final evaluation and "
                   "checkpoint")
    t.add_argument("--budget-clock", choices=["wall", "cpu"], default="wall",
                   help="what --max-minutes measures: wall-clock time, or this process's CPU time (all its "
                   "threads; the compute a run received on a shared machine)")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")


def _add_optimizer_args(t, batch_size: int | None, lr: float | None, warmup: int | None) -> None:
    t.add_argument("--batch-size", type=int, default=batch_size,
                   help="global batch: examples per optimizer step, over all accumulation steps and ranks"
                   + ("" if batch_size else BY_BUDGET))
    t.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per optimizer step (micro batch = batch size / grad accum)")
    t.add_argument("--lr", type=float, default=lr, help="peak learning rate (AdamW), reached after the warmup"
                   + ("" if lr else BY_BUDGET))
    t.add_argument("--min-lr", type=float, help="learning rate at the end of the decay (default: lr / 10)")
    t.add_argument("--lr-scale", default="", metavar="PREFIX=FACTOR[,...]",
                   help="learning-rate multipliers by parameter-name prefix, e.g. vqa_head=10 for a new head "
                   "(names as in the model's state dict; the schedule applies to every group)")
    t.add_argument("--warmup-steps", type=int, default=warmup,
                   help="steps of linear learning-rate warmup (with --max-minutes at most a fifth of the steps)"
                   + ("" if warmup else BY_BUDGET))
    t.add_argument("--schedule", choices=["cosine", "linear", "wsd"], default="cosine",
                   help="decay after the warmup, ending at the last step: cosine, linear, or wsd "
                   "(warmup-stable-decay: constant, then linear over the last --decay-fraction)")
    t.add_argument("--decay-fraction", type=float, default=0.2,
                   help="wsd: share of the steps after warmup spent decaying")
    t.add_argument("--weight-decay", type=float, default=0.1,
                   help="AdamW weight decay of matrices and embeddings (not of biases and norms)")
    t.add_argument("--optimizer", choices=["adamw", "muon"],
                   help="adamw, or muon: Muon (orthogonalised momentum) on the hidden matrices and AdamW on "
                   "embeddings, biases and norms, at the same learning rate (default: adamw, or the command's "
                   "choice for the budget)")
    t.add_argument("--beta2", type=float, help="AdamW's second-moment decay (default: 0.95, or the command's "
                   "choice, e.g. 0.99 for `pretrain gpt`)")
    t.add_argument("--grad-clip", type=float, default=1.0,
                   help="clip the global gradient norm to this (0: no clipping)")


def _add_run_args(p: argparse.ArgumentParser, t, eval_every: int) -> None:
    t.add_argument("--eval-every", type=int,
                   help=f"evaluate and save a checkpoint every N steps (default: {eval_every}; with --max-minutes: "
                   "about 8 times over the run, fewer when that would cost over 3%% of the budget)")
    t.add_argument("--eval-batches", type=int,
                   help="validation batches per evaluation (default: 20; with --max-minutes: sized from the "
                   "measured step time)")
    p.set_defaults(default_eval_every=eval_every)
    t.add_argument("--log-every", type=int, default=10, help="write a training row to metrics.jsonl every N steps")
    t.add_argument("--seed", type=int, default=1337, help="random seed: initialisation, data order, masking, dropout")
    t.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU) | cpu | cuda | cuda:N")
    t.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="autocast precision; bf16 and fp16 are for GPUs (fp16 adds loss scaling)")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.add_argument("--log-to", nargs="+", choices=["tensorboard", "wandb"], default=[],
                   help="also write metrics to TensorBoard event files (OUT/tensorboard) and/or an offline "
                   "Weights & Biases run (OUT/wandb); needs pip install 'lingvis[track]'")


def add_scale_args(p: argparse.ArgumentParser) -> None:
    """Distributed training, memory and LoRA flags (TrainConfig fields of the same names)."""
    s = p.add_argument_group("scale out and adapters")
    s.add_argument("--distributed", choices=["auto", "none", "ddp", "fsdp"], default="auto",
                   help="data parallelism under torchrun (docs/distributed.md): DDP replicas or FSDP2 shards; "
                   "auto: DDP, or FSDP when a model replica would not fit in memory. A single process "
                   "ignores it")
    s.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute each transformer block in backward to save activation memory")
    s.add_argument("--lora-rank", type=int, default=0, help="> 0: fine-tune LoRA adapters of this rank only")
    s.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA scale numerator (update * alpha/rank)")
    s.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on the input of each LoRA adapter")
    s.add_argument("--lora-targets", default="qkv,q,kv,proj,fc",
                   help="comma-separated attention/MLP projections that get adapters")
    s.add_argument("--lora-train", default="",
                   help="comma-separated parameter-name parts that also train (e.g. classifier)")


DEVICE_HELP = "auto (CUDA, else Apple MPS, else CPU) | cpu | cuda | cuda:N | mps"


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """`--device` of the commands that run a model (generation, embedding, search, prediction)."""
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def device_for(name: str, cpu_only: str | None = None):
    """The torch.device a command runs on (`auto` resolved by `lingvis.train.trainer.pick_device`).
    `cpu_only` names an option that needs the CPU (e.g. "--int8"): `auto` then means the CPU and any
    other device is an error."""
    from ..train.trainer import pick_device

    if cpu_only and name == "auto":
        name = "cpu"
    device = pick_device(name)
    if cpu_only and device.type != "cpu":
        raise ValueError(f"{cpu_only} runs on the CPU only; drop it or use --device cpu (got --device {name})")
    return device


def apply_config(args: argparse.Namespace, argv: list[str]) -> None:
    """Fill `args` from the `--config` file for every option not given explicitly on the command line."""
    given = _given_options(args, argv)
    for key, value in load_config_file(args.config).items():
        if not hasattr(args, key):
            raise SystemExit(f"error: {args.config}: unknown option {key!r} for this command")
        if key not in given:
            setattr(args, key, value)


def _given_options(args: argparse.Namespace, argv: list[str]) -> set[str]:
    """Option names typed on the command line, resolving argparse's unique-prefix abbreviations
    (`--max-s 5` is `--max-steps 5`)."""
    names = set(vars(args))
    given = set()
    for a in argv:
        if a == "--":
            break
        if not a.startswith("--"):
            continue
        key = a[2:].split("=")[0].replace("-", "_")
        hits = [key] if key in names else [n for n in names if n.startswith(key)]
        if len(hits) == 1:
            given.add(hits[0])
    return given


BUDGET_ONLY_MAX_STEPS = 10 ** 7  # the cap of a run bounded by --max-minutes alone: the budget sets the horizon


def max_steps_of(args: argparse.Namespace) -> int:
    """--max-steps as given; without it, the command's default step count, or (with --max-minutes alone)
    a cap far beyond any budget, so that the budget alone fixes the schedule's horizon."""
    if getattr(args, "max_steps", None) is not None:
        return args.max_steps
    if getattr(args, "max_minutes", None) is not None:
        return BUDGET_ONLY_MAX_STEPS
    return getattr(args, "default_max_steps", None) or 1000


def train_config(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    values["max_steps"] = max_steps_of(args)
    values["progress"] = not getattr(args, "no_progress", False)
    if values.get("max_minutes") is None:  # no budget: the command's fixed evaluation cadence
        values.setdefault("eval_every", getattr(args, "default_eval_every", None) or 200)
    return TrainConfig(**values)


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))
