"""benchmarks/t2i_prompt_use: a denoiser that ignores the prompt has a zero text gain at every noise level, one that
reads it does not; the single-object statistics are counts over the prompts."""
import torch

from benchmarks.t2i_prompt_use import named_shape_chance, single_object_use, text_gain
from lingvis.data.shapes import generate_shapes
from lingvis.recipes.clip_data import train_word_tokenizer


class _Denoiser(torch.nn.Module):
    def __init__(self, reads_text: bool):
        super().__init__()
        self.reads_text = reads_text
        self.config = type("Config", (), {"sample_size": 32, "in_channels": 3})()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x_t, t, states, mask):
        out = 0.5 * x_t  # (N, 3, H, W)
        if self.reads_text:
            out = out + states[:, 1:, 0].mean(1)[:, None, None, None]  # (N, 1, 1, 1) from the prompt (not bos)
        return out


def test_text_gain_zero_only_for_a_text_blind_denoiser(tmp_path, tiny_t2i):
    val = generate_shapes(tmp_path, n_train=0, n_val=6, n_test=0, image_size=32, n_test_unseen=0)["captions_val"]
    tok = train_word_tokenizer(["a small large red green blue yellow purple orange circle square star triangle cross",
                                "and to the left right of above below single on white background shapes two three"])
    model = tiny_t2i(tok)
    model.denoiser = _Denoiser(reads_text=False)
    rows = text_gain(model, tok, str(val), 6, sigmas=(0.5, 0.9))
    assert [r["sigma"] for r in rows] == [0.5, 0.9]
    assert all(r["cond"] == r["empty"] == r["shuffled"] for r in rows)
    model.denoiser = _Denoiser(reads_text=True)
    rows = text_gain(model, tok, str(val), 6, sigmas=(0.5, 0.9))
    assert all(r["cond"] != r["empty"] for r in rows)
    use = single_object_use(model, tok, 3, guidance=1.0)
    assert use["prompts"] == 3
    assert 0 <= use["only_named_colour"] <= use["named_colour_present"] <= 3 and 0 <= use["none"] <= 3
    assert use["exactly_the_named_object"] <= use["named_shape_and_colour"] <= use["named_shape_present"] <= 3
    assert use["named_shape_and_colour"] <= use["named_colour_present"]
    assert sum(use["shapes_named"].values()) == 3
    assert 0.0 <= use["named_shape_share"] <= 1.0
    assert sum(k for _, _, k in use["by_size"].values()) == 3
    assert set(use["by_size"]) <= {"small", "large"}
    if use["objects_per_image"] == 0:
        assert use["named_shape_share"] == 0.0
    assert sum(use["shapes_found"].values()) == round(use["objects_per_image"] * 3)


class _ColourModel(torch.nn.Module):
    """A stand-in text-to-image model whose x0 estimate is the palette colour of the prompt's colour word (reads_text)
    or plain grey (text-blind)."""

    def __init__(self, tok, reads_text: bool):
        super().__init__()
        from lingvis.data.shapes_scene import COLOURS

        self.tok, self.reads_text, self.image_size, self.text_length = tok, reads_text, 8, 8
        self.config = type("Config", (), {"scheduler": {"num_train_timesteps": 1000}})()
        self.palette = {tok.encode_batch([c])[0][0]: torch.tensor(v) / 127.5 - 1 for c, v in COLOURS.items()}

    def encode_text(self, ids, mask):
        states = torch.zeros(len(ids), 1, 3)  # (B, 1, 3): the colour word's palette colour
        for i, row in enumerate(ids.tolist()):
            for tid in row:
                if tid in self.palette:
                    states[i, 0] = self.palette[tid]
        return states, None

    def to_latents(self, images, generator=None):  # pixel space
        return images

    def from_latents(self, latents):
        return latents

    @property
    def sampling_denoiser(self):
        def velocity(x_t, t, states, mask):  # rectified flow: v = (x_t - x0) / sigma
            x0 = states[:, 0, :, None, None] if self.reads_text else torch.zeros(len(x_t), 3, 1, 1)
            return (x_t - x0) / (t / 1000)[:, None, None, None]
        return velocity


def test_colour_pull_finds_the_named_colour_only_when_the_prompt_sets_it():
    from benchmarks.t2i_prompt_use import colour_pull

    tok = train_word_tokenizer(["a large red green blue yellow purple orange circle"])
    rows = colour_pull(_ColourModel(tok, reads_text=True), tok, sigmas=(0.95, 0.7), n=4)
    assert [r["sigma"] for r in rows] == [0.95, 0.7]
    assert all(r["accuracy"] == 1.0 and r["cosine"] > 0.99 and r["shift"] > 0.1 for r in rows)
    blind = colour_pull(_ColourModel(tok, reads_text=False), tok, sigmas=(0.95,), n=4)[0]
    assert blind["shift"] < 1e-5 and abs(blind["cosine"]) < 1e-5


def test_named_shape_chance_is_the_pooled_shape_frequency():
    from lingvis.eval.shapes_detector import Detection

    def det(shape):
        return Detection("red", shape, 0.5, 0.5, 0.1, 10.0, 0.0)

    # 3 circles and 1 square over two images; prompts name circle (1 object) and square (3 objects)
    dets = [[det("circle")], [det("circle"), det("circle"), det("square")]]
    assert named_shape_chance(dets, ["circle", "square"]) == (1 * 3 / 4 + 3 * 1 / 4) / 4
    assert named_shape_chance([[], []], ["circle", "square"]) == 0.0
