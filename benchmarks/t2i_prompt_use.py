"""Does a flow-matching shapes model follow its prompt? Two cheap checks (under 10 CPU-s each on the shapes DiT):

1. text gain per noise level: velocity MSE of the sampling (EMA) denoiser on validation images with their first
   caption, with the empty prompt and with another image's caption (seeded noise, the same for the three);
2. single-object prompts (the GenEval slice's first `--prompts`, 25 steps of the model's scheduler): objects the
   shapes detector finds per image, distinct colours per image, whether the named colour is among them and
   whether it is the only one, whether the named shape is found, an object of the named shape and colour, exactly
   that one object (what the single-object and colours checks need), and the detected shapes against the named.

3. colour pull: for `a large <colour> circle` (the 6 colours) on the same noised white images at a high noise level,
   the shift of the x0 estimate's mean colour (decoded, for a latent model) from the 6 prompts' mean, against the
   palette colour's shift from the palette mean: how often the closest palette shift (cosine) is the named
   colour's (chance 1/6), the mean cosine with the named colour's shift and the mean shift length (an ideal model:
   about the object's area fraction x the palette shift, 0.02-0.07). Under 2 CPU-s; it moves long before the
   samples do.

A model that ignores the prompt shows a zero text gain, the named colour about as often as chance and a colour pull
at chance.

    python -m benchmarks.t2i_prompt_use --model RUN [--model RUN2 ...] [--val DATA/captions_val.json]
        [--images 128] [--prompts 20] [--guidance 1,4] [--guidance-below 0.5] [--steps 25] [--samples-only]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import torch


def text_gain(model, tokenizer, val_json: str, n: int, sigmas=(0.2, 0.5, 0.7, 0.9), seed: int = 0) -> list[dict]:
    """[{sigma, cond, empty, shuffled}] velocity MSE per noise level (flow matching)."""
    from lingvis.diffusion.sampling import prompt_tokens
    from lingvis.recipes.clip_data import CaptionedImages, load_groups
    from lingvis.recipes.diffusion import image_transform

    groups = load_groups(val_json)[0][:n]
    ds = CaptionedImages(groups, image_transform(model.image_size), random_caption=False)
    x0 = torch.stack([ds[i]["image"] for i in range(len(ds))])  # (N, 3, H, W) in [-1, 1]
    x0 = model.to_latents(x0, torch.Generator().manual_seed(seed))  # (N, C, h, w): the diffusion space
    texts = [ds[i]["text"] for i in range(len(ds))]
    prompts = {"cond": texts, "empty": [""] * len(texts), "shuffled": texts[1:] + texts[:1]}
    den = model.sampling_denoiser
    rows = []
    with torch.no_grad():
        enc = {k: model.encode_text(*prompt_tokens(tokenizer, v, model.text_length)) for k, v in prompts.items()}
        for s in sigmas:
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
            x_t = (1 - s) * x0 + s * noise  # rectified flow at noise level s
            t = torch.full((len(x_t),), s * model.config.scheduler.get("num_train_timesteps", 1000))
            row = {"sigma": s}
            for k, (states, mask) in enc.items():
                row[k] = float((den(x_t, t, states, mask) - (noise - x0)).square().mean())
            rows.append(row)
    return rows


def colour_pull(model, tokenizer, sigmas=(0.95, 0.85, 0.7), n: int = 16, seed: int = 0) -> list[dict]:
    """[{sigma, accuracy, cosine, shift}]: does the prompt's colour word move the x0 estimate toward that colour?"""
    from lingvis.data.shapes_scene import COLOURS
    from lingvis.diffusion.sampling import prompt_tokens

    names = list(COLOURS)
    k = len(names)
    palette = torch.tensor([COLOURS[c] for c in names], dtype=torch.float32) / 127.5 - 1  # (K, 3) in [-1, 1]
    want = nn_normalize(palette - palette.mean(0))  # (K, 3)
    den, size = model.sampling_denoiser, model.image_size
    rows = []
    with torch.no_grad():
        states, mask = model.encode_text(*prompt_tokens(tokenizer, [f"a large {c} circle" for c in names],
                                                        model.text_length))  # (K, L, D)
        states = states.repeat_interleave(n, 0)  # (K*n, L, D)
        mask = None if mask is None else mask.repeat_interleave(n, 0)
        white = model.to_latents(torch.ones(1, 3, size, size), torch.Generator().manual_seed(seed))  # (1, C, h, w)
        for s in sigmas:
            noise = torch.randn(n, *white.shape[1:], generator=torch.Generator().manual_seed(seed))  # (n, C, h, w)
            x_t = ((1 - s) * white + s * noise).repeat(k, 1, 1, 1)  # (K*n, C, h, w): white images noised to sigma s
            t = torch.full((k * n,), s * model.config.scheduler.get("num_train_timesteps", 1000))
            x0 = model.from_latents(x_t - s * den(x_t, t, states, mask))  # (K*n, 3, H, W) the x0 estimate, pixels
            mean = x0.view(k, n, 3, -1).mean(-1)  # (K, n, 3)
            shift = mean - mean.mean(0, keepdim=True)  # (K, n, 3)
            cos = nn_normalize(shift) @ want.T  # (K, n, K)
            rows.append({"sigma": s, "accuracy": float((cos.argmax(-1) == torch.arange(k)[:, None]).float().mean()),
                         "cosine": float(cos[torch.arange(k), :, torch.arange(k)].mean()),
                         "shift": float(shift.norm(dim=-1).mean())})
    return rows


def nn_normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def shape_share(dets: list, shapes: list[str]) -> tuple[float, float, int]:
    """(share of the detected objects with the named shape, its prompt-blind level, prompts) over these images."""
    total = sum(len(d) for d in dets)
    share = sum(x.shape == sh for d, sh in zip(dets, shapes) for x in d) / total if total else 0.0
    return share, named_shape_chance(dets, shapes), len(dets)


def named_shape_chance(dets: list, shapes: list[str]) -> float:
    """The named-shape share a prompt-blind model with the same detected shapes would get: each image's objects
    drawn from the pooled shape distribution of all images (object-weighted mean of that shape's frequency)."""
    found = Counter(x.shape for d in dets for x in d)
    total = sum(found.values())
    return sum(len(d) * found[sh] / total for d, sh in zip(dets, shapes)) / total if total else 0.0


def single_object_use(model, tokenizer, n: int, guidance: float, seed: int = 0, steps: int = 25,
                      guidance_below: float = 1.0) -> dict:
    """Detector statistics of the first n single-object GenEval prompts' samples."""
    from lingvis.eval.geneval_shapes import make_items
    from lingvis.eval.shapes_detector import detect_shapes
    from lingvis.eval.text_to_image import generate_for

    items = [it for it in make_items(n, seed) if it.category == "single_object"]
    images = generate_for(model, tokenizer, [it.prompt for it in items], steps=steps, guidance_scale=guidance,
                          scheduler=None, seed=seed, batch_size=32, guidance_below=guidance_below)
    dets = [detect_shapes(im) for im in images]
    named = [it.objects[0][0] for it in items]
    shapes = [it.objects[0][1] for it in items]
    both = [[x for x in d if x.colour == c and x.shape == sh] for d, c, sh in zip(dets, named, shapes)]
    return {"prompts": len(items), "objects_per_image": statistics.mean(len(d) for d in dets),
            "exactly_one": sum(len(d) == 1 for d in dets), "none": sum(not d for d in dets),
            "colours_per_image": statistics.mean(len({x.colour for x in d}) for d in dets),
            "named_colour_present": sum(any(x.colour == c for x in d) for d, c in zip(dets, named)),
            "only_named_colour": sum(bool(d) and all(x.colour == c for x in d) for d, c in zip(dets, named)),
            "named_shape_present": sum(any(x.shape == sh for x in d) for d, sh in zip(dets, shapes)),
            "named_shape_and_colour": sum(bool(b) for b in both),  # one object with both (the colours check)
            "exactly_the_named_object": sum(len(d) == 1 and len(b) == 1 for d, b in zip(dets, both)),
            # of all detected objects, the share with the prompt's shape: blind to how many objects are drawn
            # (more objects raise "named shape present" by chance; a prompt-blind model's share is the detector's
            # base rate of that shape)
            "named_shape_share": sum(x.shape == sh for d, sh in zip(dets, shapes) for x in d)
            / max(1, sum(len(d) for d in dets)),
            "named_shape_chance": named_shape_chance(dets, shapes),
            "by_size": {z: shape_share([d for d, it in zip(dets, items) if it.objects[0][2] == z],
                                       [sh for sh, it in zip(shapes, items) if it.objects[0][2] == z])
                        for z in sorted({it.objects[0][2] for it in items})},
            "shapes_found": dict(sorted(Counter(x.shape for d in dets for x in d).items())),
            "shapes_named": dict(sorted(Counter(shapes).items()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="a flow-matching text-to-image run")
    ap.add_argument("--val", default=None, help="captions JSON of validation images (default: shapes val)")
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--guidance", default="1,4")
    ap.add_argument("--guidance-below", type=float, default=1.0,
                    help="guide only at noise levels sigma <= this (the sample rows)")
    ap.add_argument("--steps", type=int, default=25, help="sampler steps of the sample rows")
    ap.add_argument("--samples-only", action="store_true", help="only the single-object sample rows")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import tempfile

    from lingvis.data.shapes import generate_shapes

    with tempfile.TemporaryDirectory(prefix="t2i_prompt_use_") as tmp:
        val = a.val or str(generate_shapes(tmp, n_train=0, n_val=a.images, n_test=0, image_size=32,
                                           n_test_unseen=0)["captions_val"])  # the shapes val split, seed 0
        for run in a.model:
            report(run, val, a)


def report(run: str, val: str, a: argparse.Namespace) -> None:
    import lingvis

    model, tok = lingvis.load(run), lingvis.load_tokenizer(run)
    if model.config.scheduler.get("_class_name") != "FlowMatchEulerDiscreteScheduler":
        raise SystemExit(f"{run}: t2i_prompt_use needs a flow-matching model")
    model.eval()
    t0 = time.process_time()
    print(f"## {run}")
    if not a.samples_only:
        print("| sigma | MSE caption | empty prompt | other caption | text gain |\n|---:|---:|---:|---:|---:|")
        for r in text_gain(model, tok, val, a.images):
            print(f"| {r['sigma']:g} | {r['cond']:.4f} | {r['empty']:.4f} | {r['shuffled']:.4f} | "
                  f"{r['empty'] - r['cond']:.4f} |")
        print("\n| sigma | colour pull: nearest is the named colour (chance 0.17) | mean cosine | mean shift |\n"
              "|---:|---:|---:|---:|")
        for r in colour_pull(model, tok):
            print(f"| {r['sigma']:g} | {r['accuracy']:.2f} | {r['cosine']:+.2f} | {r['shift']:.4f} |")
    print(f"\nsamples: {a.steps} steps, guidance at sigma <= {a.guidance_below:g}")
    print("\n| guidance | objects / image | exactly one | none | colours / image | named colour present | "
          "only the named colour | named shape present | one object of the named shape and colour | "
          "exactly that object | objects of the named shape (prompt-blind) | shapes found (named) |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for g in [float(x) for x in a.guidance.split(",")]:
        u = single_object_use(model, tok, a.prompts, g, steps=a.steps, guidance_below=a.guidance_below)
        n = u["prompts"]
        found = ", ".join(f"{k} {v} ({u['shapes_named'].get(k, 0)})" for k, v in u["shapes_found"].items())
        print(f"| {g:g} | {u['objects_per_image']:.2f} | {u['exactly_one']}/{n} | {u['none']}/{n} | "
              f"{u['colours_per_image']:.2f} | {u['named_colour_present']}/{n} | {u['only_named_colour']}/{n} | "
              f"{u['named_shape_present']}/{n} | {u['named_shape_and_colour']}/{n} | "
              f"{u['exactly_the_named_object']}/{n} | {u['named_shape_share']:.2f} "
              f"({u['named_shape_chance']:.2f}) | {found} |")
        sizes = "; ".join(f"{z} ({k} prompts) {a:.2f} ({b:.2f})" for z, (a, b, k) in u["by_size"].items())
        print(f"|  | share of the named shape by the prompt's size (prompt-blind): {sizes} |")
    print(f"\n{time.process_time() - t0:.1f} CPU-s, 1 thread\n")


if __name__ == "__main__":
    main()
