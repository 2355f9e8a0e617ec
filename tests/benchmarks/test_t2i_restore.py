"""benchmarks/t2i_restore: an oracle velocity restores every scene from every noise level; a zero one none."""
import numpy as np
import torch

from benchmarks.t2i_restore import restore_counts
from lingvis.data.shapes import make_split_scenes, render_scene
from lingvis.recipes.clip_data import train_word_tokenizer


class _Velocity(torch.nn.Module):
    def __init__(self, x0: torch.Tensor | None):
        super().__init__()
        self.x0 = x0  # None: predict zero velocity (the noise stays)
        self.config = type("Config", (), {"sample_size": 32, "in_channels": 3})()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t, states, mask):
        if self.x0 is None:
            return torch.zeros_like(x_t)
        return (x_t - self.x0) / (t[:, None, None, None] / 1000)  # (N, 3, H, W) rectified-flow velocity


def test_restore_counts_oracle_and_zero_velocity(tiny_t2i):
    scenes = [s for s in make_split_scenes("test", 60, 0) if len(s.objects) == 1][:6]
    tok = train_word_tokenizer(["a small red circle", "a large blue star square triangle cross green"])
    model = tiny_t2i(tok)
    x0 = torch.stack([torch.from_numpy(np.array(render_scene(s, 32))).permute(2, 0, 1).float() / 127.5 - 1
                      for s in scenes])
    model.denoiser = _Velocity(x0)
    rows = restore_counts(model, tok, scenes, [0.3, 0.9])
    assert [(r["shape"], r["colour"], r["n"]) for r in rows] == [(6, 6, 6)] * 2
    model.denoiser = _Velocity(None)
    assert restore_counts(model, tok, scenes, [0.9])[0]["shape"] == 0


def test_swap_captions_name_another_shape_and_count_the_caption_shape(tiny_t2i):
    from benchmarks.t2i_restore import swapped_shape

    scenes = [s for s in make_split_scenes("test", 60, 0) if len(s.objects) == 1][:4]
    assert all(swapped_shape(s).objects[0].shape != s.objects[0].shape for s in scenes)
    assert all(swapped_shape(s).objects[0].colour == s.objects[0].colour for s in scenes)
    tok = train_word_tokenizer(["a small red circle", "a large blue star square triangle cross green"])
    model = tiny_t2i(tok)
    x0 = torch.stack([torch.from_numpy(np.array(render_scene(s, 32))).permute(2, 0, 1).float() / 127.5 - 1
                      for s in scenes])
    model.denoiser = _Velocity(x0)  # follows the image, never the caption
    rows = restore_counts(model, tok, scenes, [0.5], swap=True)
    assert (rows[0]["shape"], rows[0]["caption_shape"]) == (4, 0)
    model.denoiser = _Velocity(torch.stack([  # follows the caption: draws the swapped scene
        torch.from_numpy(np.array(render_scene(swapped_shape(s), 32))).permute(2, 0, 1).float() / 127.5 - 1
        for s in scenes]))
    rows = restore_counts(model, tok, scenes, [0.5], swap=True)
    assert (rows[0]["shape"], rows[0]["caption_shape"]) == (0, 4)
    assert "caption_shape" not in restore_counts(model, tok, scenes, [0.5])[0]
