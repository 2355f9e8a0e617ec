"""benchmarks/t2i_ideal_gain: with the test scenes in the prior the posterior mean finds them at low noise; at
high noise the words that match the scene lower the error of the posterior mean."""
import random

from benchmarks.t2i_ideal_gain import CONDITIONS, ideal_gain
from lingvis.data.shapes import make_split_scenes
from lingvis.data.shapes_scene import make_scene


def test_posterior_mean_finds_known_scenes_and_words_help_at_high_noise():
    test = [s for s in make_split_scenes("test", 80, 0) if len(s.objects) == 1][:4]
    rng = random.Random(0)
    prior = test + [make_scene(rng, 1, 1) for _ in range(300)]
    low, high = ideal_gain(prior, test, [0.05, 0.95], size=16)
    assert set(low["mse"]) == set(CONDITIONS)
    assert all(v < 1e-3 for v in low["mse"].values())  # each test render is in the prior and matches its words
    assert high["mse"]["all words"] < high["mse"]["none"]
