"""Linear probes of a llava model's image tokens: what do the patch features the projector reads say about the
shapes scene? For every patch of the tower's grid the label is the shape (and the colour) of the object whose
centre lies in that patch, or "none"; a logistic-regression probe is fit on training scenes and scored on held-out
ones. Reported: centre detection F1 (object vs none), shape and colour accuracy on the centre patches, for each
model given and for the raw pixels of the patches (the floor any useful tower should beat). A RUN may also be a
bare tower (a ViT, CLIP or captioner folder, e.g. `ShapesPlan(tower="dense")`'s): it is read as a llava model
would read it (hidden state -2, class token dropped).

    python -m benchmarks.llava_probe RUN [RUN ...] [--n-train 600] [--n-test 200]
"""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

SHAPES = ("circle", "square", "triangle", "star", "cross")


class TowerFeatures(nn.Module):
    """A bare ViT read like a llava model's tower: the patch tokens of hidden state `layer`, no projector."""

    def __init__(self, vit: nn.Module, layer: int = -2):
        super().__init__()
        self.vision, self.layer, self.projector = vit, layer, nn.Identity()
        self.config = SimpleNamespace(pad_to_square=False)

    @property
    def image_config(self):
        return self.vision.config

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        from lingvis.recipes.shapes_tower import feature_tokens

        return feature_tokens(self.vision, pixels, self.layer)  # (N, P, C)


def load_for_probe(path: str) -> nn.Module:
    """A llava model as it is; a ViT / CLIP / captioner folder as `TowerFeatures` of its ViT."""
    import lingvis
    from lingvis.recipes.llava import vision_tower

    model = lingvis.load(path)
    return (model if hasattr(model, "image_features") else TowerFeatures(vision_tower(path))).eval()


def patch_labels(scenes, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, grid*grid) shape and colour labels: 0 = no object centre in the patch, else 1 + index."""
    from lingvis.data.shapes_scene import COLOURS

    colours = list(COLOURS)
    shape = torch.zeros(len(scenes), grid * grid, dtype=torch.long)
    colour = torch.zeros_like(shape)
    for n, s in enumerate(scenes):
        for o in s.objects:
            p = min(int(o.cy * grid), grid - 1) * grid + min(int(o.cx * grid), grid - 1)
            shape[n, p], colour[n, p] = 1 + SHAPES.index(o.shape), 1 + colours.index(o.colour)
    return shape, colour


@torch.no_grad()
def patch_features(model, scenes, size: int = 64) -> torch.Tensor:
    """(N, P, C) the features the projector reads (feature layer, class token dropped as configured)."""
    from lingvis.data.llava_inputs import pixel_values
    from lingvis.data.shapes_render import render_scene

    proj, model.projector = model.projector, nn.Identity()
    try:
        out = [model.image_features(pixel_values(model, [render_scene(s, size) for s in scenes[i:i + 64]]))
               for i in range(0, len(scenes), 64)]
    finally:
        model.projector = proj
    feats = torch.cat(out)
    return feats[:, -model.vision.config.grid ** 2:]  # (N, P, C) patch tokens only


@torch.no_grad()
def pixel_patches(model, scenes, size: int = 64) -> torch.Tensor:
    """(N, P, 3*p*p) the raw normalised pixels of each patch."""
    from lingvis.data.llava_inputs import pixel_values
    from lingvis.data.shapes_render import render_scene

    px = pixel_values(model, [render_scene(s, size) for s in scenes])  # (N, 3, S, S)
    p = model.vision.config.patch_size
    return F.unfold(px, p, stride=p).transpose(1, 2)  # (N, P, 3*p*p)


def probe(x_tr, y_tr, x_te, y_te, steps: int = 300) -> torch.Tensor:
    """Fit softmax regression (L-BFGS, weak L2) on (M, C) -> labels; predicted test labels."""
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    lin = nn.Linear(x_tr.shape[1], int(max(y_tr.max(), y_te.max())) + 1)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(x_tr), y_tr) + 1e-4 * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return lin(x_te).argmax(-1)


def scores(feats_tr, feats_te, lab_tr, lab_te) -> dict:
    (s_tr, c_tr), (s_te, c_te) = lab_tr, lab_te
    flat = lambda t: t.reshape(-1, t.shape[-1])  # noqa: E731
    ps, pc = probe(flat(feats_tr), s_tr.flatten(), flat(feats_te), s_te.flatten()), \
        probe(flat(feats_tr), c_tr.flatten(), flat(feats_te), c_te.flatten())
    truth = s_te.flatten()
    centre = truth > 0
    tp = ((ps > 0) & centre).sum().item()
    f1 = 2 * tp / max(1, (ps > 0).sum().item() + centre.sum().item())
    return {"centre_f1": round(100 * f1, 1),
            "shape_acc": round(100 * (ps[centre] == truth[centre]).float().mean().item(), 1),
            "colour_acc": round(100 * (pc[centre] == c_te.flatten()[centre]).float().mean().item(), 1)}


def run(paths: list[str], n_train: int = 600, n_test: int = 200) -> dict:
    from lingvis.data.shapes import make_split_scenes

    tr, te = make_split_scenes("train", n_train), make_split_scenes("test", n_test)
    out = {}
    for path in paths:
        model = load_for_probe(path)
        g = model.vision.config.grid
        lab_tr, lab_te = patch_labels(tr, g), patch_labels(te, g)
        if "pixels" not in out:
            out["pixels"] = scores(pixel_patches(model, tr), pixel_patches(model, te), lab_tr, lab_te)
        out[path] = scores(patch_features(model, tr), patch_features(model, te), lab_tr, lab_te)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="llava model or run folders, or tower folders (same tower grid)")
    ap.add_argument("--n-train", type=int, default=600, help="training scenes for the probes")
    ap.add_argument("--n-test", type=int, default=200, help="held-out scenes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name, r in run(a.runs, a.n_train, a.n_test).items():
        print(f"{name}: {r}", flush=True)


if __name__ == "__main__":
    main()
