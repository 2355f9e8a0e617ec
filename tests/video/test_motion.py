import math
import random

import numpy as np
import pytest

from lingvis.video.motion import KINDS, REVERSE, SINGLE_KINDS, MotionClip, make_motion_clip, motion_groups
from lingvis.video.motion_language import PHRASES, captions, questions


def _centroids(frames, colour=None):
    """Per frame: (x, y) centre of the drawn pixels (of one colour when given), or None if none are drawn."""
    out = []
    for f in frames:
        a = np.asarray(f).astype(int)
        mask = (a < 200).any(-1) if colour is None else (np.abs(a - np.array(colour)).sum(-1) < 60)
        ys, xs = np.nonzero(mask)
        out.append((xs.mean(), ys.mean()) if len(xs) else None)
    return out


def _motion_of(frames, clip: MotionClip):
    """Classify a rendered clip from its pixels alone (order-dependent features)."""
    from lingvis.data.shapes_scene import COLOURS

    c = _centroids(frames)
    if any(p is None for p in c):
        return "appear" if c[0] is None else "disappear"
    if len(clip.tracks) == 2:
        big = _centroids(frames, COLOURS[clip.tracks[0].colour])
        return "swap_large_right" if big[-1][0] > big[0][0] else "swap_large_left"
    dx, dy = c[-1][0] - c[0][0], c[-1][1] - c[0][1]
    steps = [math.dist(a, b) for a, b in zip(c, c[1:])]
    half = len(steps) // 2
    straight = math.dist(c[0], c[-1]) > 0.8 * sum(steps)
    if not straight:  # orbit: the sign of the summed cross products around the centre (y down: > 0 is clockwise)
        m = np.mean(c, axis=0)
        cross = sum((a[0] - m[0]) * (b[1] - m[1]) - (a[1] - m[1]) * (b[0] - m[0]) for a, b in zip(c, c[1:]))
        return "rotate_cw" if cross > 0 else "rotate_ccw"
    if sum(steps[half:]) > 2 * sum(steps[:half]):
        return "speed_up"
    if sum(steps[:half]) > 2 * sum(steps[half:]):
        return "slow_down"
    if abs(dx) > abs(dy):
        return "move_right" if dx > 0 else "move_left"
    return "move_down" if dy > 0 else "move_up"


@pytest.mark.parametrize("kind", KINDS)
def test_pixels_show_the_labelled_motion_and_reversal_gives_the_partner(kind):
    rng = random.Random(kind)
    for _ in range(5):
        clip = make_motion_clip(kind, rng)
        frames = clip.frames(32)
        assert len(frames) == 16 and frames[0].size == (32, 32)
        assert _motion_of(frames, clip) == kind
        assert _motion_of(frames[::-1], clip) == REVERSE[kind]


def test_reversed_pairs_have_the_same_frame_statistics():
    """Per-frame statistics of a class and its reversal match: only the order tells them apart."""
    rng = random.Random(0)
    for kind in ("move_left", "appear", "rotate_cw", "speed_up"):
        xs = {k: [np.mean([p[0] for p in _centroids(make_motion_clip(k, rng).frames(32)) if p])
                  for _ in range(60)] for k in (kind, REVERSE[kind])}
        a, b = np.array(xs[kind]), np.array(xs[REVERSE[kind]])  # mean x over frames, per clip
        assert abs(a.mean() - b.mean()) < 4 * math.sqrt(a.var() / len(a) + b.var() / len(b))


def test_captions_and_questions():
    rng = random.Random(1)
    clip = make_motion_clip("rotate_ccw", rng, colour="orange", shape="star")
    caps = captions(clip, random.Random(0))
    assert caps[0] == "an orange star circling counter-clockwise" and len(set(caps)) == 3
    qa = questions(clip)
    assert qa[0] == {"question": "does the orange star circle clockwise or counter-clockwise?",
                     "answer": "counter-clockwise", "answer_type": "motion"}
    swap = make_motion_clip("swap_large_left", rng, colour="red", shape="circle")
    caps = captions(swap)
    assert caps[0].startswith("a large red circle and a small") and caps[0].endswith("the red circle moving left")
    assert questions(swap)[1] == {"question": "which shape ends on the left?", "answer": "red circle",
                                  "answer_type": "motion"}


def test_groups_differ_only_in_motion():
    clips = motion_groups(3, kinds=SINGLE_KINDS)
    assert len(clips) == 30
    for g in range(3):
        group = clips[g * 10:(g + 1) * 10]
        firsts = [captions(c)[0] for c in group]
        prefix = firsts[0][: -len(PHRASES[group[0].kind])]
        assert all(f == prefix + PHRASES[c.kind] for f, c in zip(firsts, group))
    assert len({captions(c)[0] for c in clips}) == 30
    with pytest.raises(ValueError, match="unknown motion kind"):
        make_motion_clip("jump", rng=random.Random())
