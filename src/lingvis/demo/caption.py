"""Demo step: an image captioner (ViT + cross-attending decoder) on the built-in shapes scenes (~1.5 min)."""
from __future__ import annotations

from pathlib import Path

from .. import api
from ..recipes.caption import CaptionArgs, evaluate_captions, shapes_split, train_captioner
from ..train.config import TrainConfig
from . import step


@step("caption")
def demo_caption(out: Path, minutes: float = 1.0) -> dict:
    run = out / "caption"
    args = CaptionArgs(out=str(run), preset="captioner-tiny", n_train=2000, n_val=50)
    cfg = TrainConfig(max_steps=2000, max_minutes=minutes, batch_size=32, lr=1e-3, warmup_steps=50,
                      weight_decay=0.01, eval_every=1000, eval_batches=2, log_every=25)
    summary = train_captioner(args, cfg)
    model, tok = api.load(run), api.load_tokenizer(run)
    r = evaluate_captions(model, tok, shapes_split("test", 100), num_beams=3)
    print(f"\n[caption] trained {summary['step']} steps in {summary['seconds']:.0f}s "
          f"({summary['parameters'] / 1e6:.1f}M parameters)")
    print(f"[caption] held-out test: CIDEr-D {r['cider']:.2f}, BLEU-4 {r['bleu4']:.3f} ({r['n']} images, 3 beams)")
    for ex in r["examples"]:
        print(f"    {ex['hyp']}\n    (refs: {' | '.join(ex['refs'])})")
    print(f"[caption] try: lingvis caption --model {run} IMAGE.png")
    return {"cider": round(r["cider"], 3), "bleu4": round(r["bleu4"], 3), "steps": summary["step"], "run": str(run)}
