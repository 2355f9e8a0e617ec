"""The shapes LLaVA instruction set: LLaVA JSON records with the image in the first human turn, every question
kind, POPE-style balance of present and absent objects, follow-ups, text-only rows, and gold answers that pass
their own key-word scoring; `generate_shapes` writes it per split."""
import dataclasses
import json
import random
import re
from collections import Counter

import pytest

from lingvis.data.llava_json import read_llava_json
from lingvis.data.shapes import generate_shapes, make_split_scenes
from lingvis.data.shapes_instruct import (
    KINDS,
    InstructConfig,
    contrast_pairs,
    exists_probes,
    follow_up,
    grid_cell,
    instruction_records,
    region_turns,
    relative_pairs,
    relative_turns,
    scene_probes,
    where_probe,
)
from lingvis.data.shapes_language import REGION_PHRASES
from lingvis.data.shapes_scene import HELD_OUT, region, relation
from lingvis.recipes.llava_eval import keyword_correct


def test_records_are_llava_conversations():
    scenes = make_split_scenes("train", 60)
    recs = instruction_records(scenes, [f"images/{i}.png" for i in range(60)], text_only=0.2)
    with_image = [r for r in recs if "image" in r]
    assert len(with_image) == 60 and len(recs) > 60  # text-only rows mixed in
    for r in recs:
        turns = r["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert turns[0]["value"].startswith("<image>\n") == ("image" in r)
        assert sum(t["value"].count("<image>") for t in turns) == (1 if "image" in r else 0)
    assert any(len(r["conversations"]) >= 6 for r in with_image)  # multi-turn
    assert any(t["value"] in ("Where is it?", "What size is it?") for r in recs for t in r["conversations"])


def test_every_kind_and_balanced_yes_no():
    rng = random.Random(0)
    probes = [p for s in make_split_scenes("test", 200) for p in scene_probes(s, rng)]
    assert set(p.kind for p in probes) == set(KINDS)
    answers = Counter(p.key for p in probes if p.kind == "exists")
    assert answers["yes"] == answers["no"] == 200
    assert any(p.relative for p in probes) and any(not p.relative for p in probes if p.kind == "position")


def test_absent_objects_are_absent_and_gold_answers_score():
    rng = random.Random(1)
    for scene in make_split_scenes("val", 100):
        present = {(o.colour, o.shape) for o in scene.objects}
        yes, no = exists_probes(scene.objects, rng)
        words = no.question.removeprefix("Is there ").removesuffix(" in the image?").split()[-2:]
        assert tuple(words) not in present
        for p in [*scene_probes(scene, rng), *follow_up(scene.objects, rng)]:
            if p.kind != "describe":
                assert keyword_correct(p.answer, p), p
                assert not keyword_correct("I do not know.", p)


def test_generate_shapes_writes_the_instruction_set(tmp_path):
    paths = generate_shapes(tmp_path, n_train=8, n_val=2, n_test=2, n_test_unseen=0)
    convs = read_llava_json(paths["llava_train"])
    assert len([c for c in convs if c.images]) == 8 and all(p.is_file() for c in convs for p in c.images)
    assert json.loads(paths["llava_test"].read_text())[0]["image"].startswith("images/test_")


REL = re.compile(r"Is the (\w+ \w+) (?:above or below|to the left or to the right of) the (\w+ \w+)\?")
ABSENT = re.compile(r"Is there an? (\w+) (\w+) in the image\?")


def _turns(rec):
    conv = rec["conversations"]
    return [(q["value"].removeprefix("<image>\n"), a["value"]) for q, a in zip(conv[::2], conv[1::2])]


def test_relative_pairs_ask_both_orders_with_opposite_answers():
    rng, axes = random.Random(0), Counter()
    for scene in make_split_scenes("train", 300):
        objs, names = scene.objects, [f"{o.colour} {o.shape}" for o in scene.objects]
        probes = relative_pairs(objs, 2, rng)
        has = {ax for i in range(len(objs)) for j in range(len(objs)) if i != j and names[i] != names[j]
               for ax in (("v" if r in ("above", "below") else "h") for r in relation(objs[i], objs[j]))}
        assert len(probes) == (4 if has else 0)
        assert {"v" if p.key in ("above", "below") else "h" for p in probes} == has  # both axes when both hold
        for first, second in zip(probes[::2], probes[1::2]):
            a, b = REL.match(first.question).groups()
            assert REL.match(second.question).groups() == (b, a) and first.relative and second.relative
            assert {first.key, second.key} in ({"above", "below"}, {"left", "right"})
            oa, ob = objs[names.index(a)], objs[names.index(b)]
            assert any(r.startswith(first.key) for r in relation(oa, ob))  # the answer is true
            assert keyword_correct(first.answer, first) and not keyword_correct(second.answer, first)
            axes[first.key] += 1
    assert min(axes.values()) > 0.35 * sum(axes.values()) / 2  # the first-named object is random: both words


def test_contrast_pairs_share_a_colour_or_shape_with_a_present_object():
    rng, shared = random.Random(0), Counter()
    for scene in make_split_scenes("train", 300):
        present = {(o.colour, o.shape) for o in scene.objects}
        probes = contrast_pairs(scene.objects, 1, rng, colour_rate=0.75)
        assert sorted(p.key for p in probes) == ["no", "yes"]
        yes, no = sorted(probes, key=lambda p: p.key, reverse=True)
        absent, there = ABSENT.match(no.question).groups(), ABSENT.match(yes.question).groups()
        assert absent not in present and absent not in HELD_OUT and there in present
        assert absent[0] == there[0] or absent[1] == there[1]  # the contrast is with the object asked beside it
        shared["colour" if absent[0] == there[0] else "shape"] += 1
        assert keyword_correct(yes.answer, yes) and keyword_correct(no.answer, no)
    assert 0.65 < shared["colour"] / 300 < 0.85


def test_added_turns_leave_the_rest_of_each_conversation_unchanged_and_counts():
    scenes = make_split_scenes("train", 400)
    images = [f"images/{i}.png" for i in range(400)]
    plain = instruction_records(scenes, images, config=InstructConfig.plain())
    new = instruction_records(scenes, images)
    assert [r["id"] for r in plain] == [r["id"] for r in new]
    counts = Counter()
    for old, rec in zip(plain, new):
        it = iter(_turns(rec))
        assert all(t in it for t in _turns(old))  # the plain conversation is a subsequence of the new one
        for q, a in _turns(rec):
            if REL.match(q):
                counts[re.search(r" is (?:to the )?(above|below|left|right)\b", a).group(1)] += 1
            elif ABSENT.match(q):
                counts[a.split(",")[0]] += 1
    for old_rec in plain:
        for q, a in _turns(old_rec):
            if REL.match(q):
                counts["plain_relative"] += 1
    relative = counts["above"] + counts["below"] + counts["left"] + counts["right"]
    assert relative > 3 * counts["plain_relative"]  # (>= 1 pair of 2 turns in most conversations)
    assert abs(counts["above"] - counts["below"]) < 0.15 * (counts["above"] + counts["below"])
    assert abs(counts["left"] - counts["right"]) < 0.15 * (counts["left"] + counts["right"])
    assert counts["Yes"] > counts["No"] > 0


def test_region_turns_ask_where_distinct_objects_are():
    rng, asked = random.Random(0), Counter()
    for scene in make_split_scenes("train", 300):
        objs, names = scene.objects, [f"{o.colour} {o.shape}" for o in scene.objects]
        unique = [n for n in names if names.count(n) == 1]
        probes = region_turns(objs, 2, rng)
        assert len(probes) == min(2, len(unique))
        said = [re.fullmatch(r"Where is the (\w+ \w+)\?", p.question).group(1) for p in probes]
        assert len(set(said)) == len(said) and set(said) <= set(unique)  # distinct objects, never an ambiguous name
        for name, p in zip(said, probes):
            phrase = REGION_PHRASES[region(objs[names.index(name)])]
            assert (p.kind, p.key, p.relative) == ("position", phrase, False)
            assert keyword_correct(p.answer, p) and p.answer == f"The {name} is {phrase}."
            asked[phrase] += 1
    assert len(asked) == len(REGION_PHRASES)  # every region is an answer somewhere


def test_region_turns_are_added_only_when_asked_for():
    scenes = make_split_scenes("train", 200)
    images = [f"images/{i}.png" for i in range(200)]
    base = instruction_records(scenes, images, config=InstructConfig(relative_pairs=0))
    more = instruction_records(scenes, images, config=InstructConfig(relative_pairs=0, region_turns=2))
    assert InstructConfig().region_turns == 0 and InstructConfig.plain().region_turns == 0
    where = lambda recs: sum(q.startswith("Where is the ") for r in recs for q, _ in _turns(r))  # noqa: E731
    added = 0
    for old, rec in zip(base, more):
        it = iter(_turns(rec))
        assert all(t in it for t in _turns(old))  # the rest of the conversation is unchanged
        added += len(_turns(rec)) - len(_turns(old))
    assert where(more) - where(base) == added > 1.5 * 190  # about two a conversation (one for a one-object scene)


@pytest.mark.parametrize("bad", [dict(relative_pairs=-1), dict(contrast_pairs=-2), dict(text_only=1.5),
                                 dict(contrast_colour=-0.1), dict(region_turns=-1), dict(relative_chats=1.5),
                                 dict(relative_form="both"), dict(relative_weight=0), dict(relative_rationale=-1)])
def test_instruct_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="InstructConfig"):
        InstructConfig(**bad)


def test_generate_shapes_takes_the_instruct_config(tmp_path):
    plain = generate_shapes(tmp_path / "a", n_train=20, n_val=0, n_test=0, n_test_unseen=0,
                            instruct=InstructConfig.plain())
    new = generate_shapes(tmp_path / "b", n_train=20, n_val=0, n_test=0, n_test_unseen=0)
    n_turns = lambda p: sum(len(r["conversations"]) for r in json.loads(p.read_text()))  # noqa: E731
    assert n_turns(new["llava_train"]) > n_turns(plain["llava_train"])


YESNO = re.compile(r"Is the (\w+ \w+) (to the left of|to the right of|above|below) the (\w+ \w+)\?")


@pytest.mark.parametrize("form", ["word", "yesno"])
def test_relative_turns_are_true_one_order_each_and_balanced(form):
    rng, keys, told = random.Random(0), Counter(), Counter()
    for scene in make_split_scenes("train", 300):
        objs, names = scene.objects, [f"{o.colour} {o.shape}" for o in scene.objects]
        probes = relative_turns(objs, rng, form)
        asked = [(REL if form == "word" else YESNO).match(p.question).groups() for p in probes]
        axis = [p.key in ("above", "below") or "above" in p.question or "below" in p.question for p in probes]
        pairs = [(frozenset((g[0], g[-1])), v) for g, v in zip(asked, axis)]
        assert len(set(pairs)) == len(pairs) <= 3  # each pair of objects once on an axis, in one order
        for g, p in zip(asked, probes):
            a, b = objs[names.index(g[0])], objs[names.index(g[-1])]
            assert names.count(g[0]) == names.count(g[-1]) == 1 and p.relative
            truth = [r.split()[0] for r in relation(a, b)]
            if form == "word":
                assert p.key in truth and keyword_correct(p.answer, p)
            else:  # the asked relation holds exactly when the answer is yes; the answer restates the true one
                asked_rel = g[1].removeprefix("to the ").removesuffix(" of")
                assert (asked_rel in truth) == (p.key == "yes")
                said = re.search(r"is (?:to the )?(left|right|above|below)\b", p.answer).group(1)
                assert said in truth and p.answer.startswith("Yes" if p.key == "yes" else "No")
                told[said] += 1
            keys[p.key] += 1
    if form == "word":
        assert min(keys[k] for k in ("left", "right", "above", "below")) > 0.35 * sum(keys.values()) / 4
    else:
        assert abs(keys["yes"] - keys["no"]) < 0.1 * sum(keys.values()) and len(told) == 4


def test_relative_chats_are_short_added_conversations_and_weights_mark_relative_keys():
    scenes = make_split_scenes("train", 400)
    images = [f"images/{i}.png" for i in range(400)]
    base = instruction_records(scenes, images, config=InstructConfig(relative_pairs=0))
    more = instruction_records(scenes, images, config=InstructConfig(relative_pairs=0, relative_chats=0.5,
                                                                     relative_weight=4))
    added = [r for r in more if r["id"].endswith("-relative")]
    assert 0.25 * 400 < len(added) < 0.55 * 400 and len(more) == len(base) + len(added)
    rest = [r for r in more if not r["id"].endswith("-relative")]
    assert [_turns(r) for r in rest] == [_turns(r) for r in base]  # the rest of the set is unchanged
    for r in added:
        k = int(r["id"].split("-")[1])
        assert r["image"] == images[k] and r["conversations"][0]["value"].startswith("<image>\n")
        assert 1 <= len(_turns(r)) <= 3 and all(REL.match(q) for q, _ in _turns(r))
    for r in more:  # every relative answer carries its key and weight, no other answer does
        for q, a in zip(r["conversations"][::2], r["conversations"][1::2]):
            relative = bool(REL.match(q["value"].removeprefix("<image>\n")))
            assert ("weight" in a) == relative and (not relative or (a["weight"] == 4 and a["key"] in a["value"]))
    assert InstructConfig().relative_chats == 0 and InstructConfig().relative_weight == 1
    yesno = instruction_records(scenes, images, config=InstructConfig(relative_pairs=0, relative_chats=0.5,
                                                                      relative_form="yesno"))
    short = [r for r in yesno if r["id"].endswith("-relative")]
    assert short and all(YESNO.match(q) for r in short for q, _ in _turns(r))
    assert not any("weight" in t for r in yesno for t in r["conversations"])


def test_weighted_yes_no_relative_answers_read_as_llava_turns(tmp_path):
    scenes = make_split_scenes("train", 60)
    recs = instruction_records(scenes, [f"images/{i}.png" for i in range(60)], config=InstructConfig(
        relative_pairs=0, relative_chats=1.0, relative_form="yesno", relative_weight=3))
    path = tmp_path / "set.json"
    path.write_text(json.dumps(recs))
    weighted = [m for c in read_llava_json(path) for m in c.messages if "weight" in m]
    assert weighted and all(m["weight"] == 3.0 and m["content"].lower().startswith(m["key"]) for m in weighted
                            if m["key"] in ("yes", "no"))


@pytest.mark.parametrize("n", [3, 4, 9])
def test_grid_cells_cover_the_axis_and_order_related_objects(n):
    assert [grid_cell(v, 9) for v in (0.0, 0.05, 0.112, 0.5, 0.999, 1.0)] == [1, 1, 2, 5, 9, 9]
    assert [grid_cell(v, 3) for v in (0.0, 0.33, 1 / 3, 0.6, 2 / 3, 1.0)] == [1, 1, 2, 2, 3, 3]  # the 3 x 3 regions
    shared = 0
    for scene in make_split_scenes("train", 300):
        for a in scene.objects:
            for b in scene.objects:
                for rel in relation(a, b):
                    ca, cb = (a.cx, b.cx) if rel in ("left of", "right of") else (a.cy, b.cy)
                    shared += grid_cell(ca, n) == grid_cell(cb, n)
                    if grid_cell(ca, n) != grid_cell(cb, n):
                        assert (grid_cell(ca, n) < grid_cell(cb, n)) == (rel in ("left of", "above"))
    assert (shared == 0) == (n == 9)  # REL_MARGIN is wider than a ninth: related objects never share one


@pytest.mark.parametrize("grid", [3, 9])
def test_relative_rationale_reads_both_coordinates_before_its_conclusion(grid):
    rng, n = random.Random(3), 0
    for scene in make_split_scenes("train", 200):
        plain, why = scene_probes(scene, random.Random(n)), scene_probes(scene, random.Random(n), grid)
        n += 1
        for p, w in zip(plain, why):
            if not p.relative:
                assert w == p  # only relative answers change
                continue
            assert (w.question, w.key, w.relative) == (p.question, p.key, True)
            m = re.fullmatch(r"The (\w+ \w+) is in (column|row) (\d) and the (\w+ \w+) in \2 (\d), so (.*)", w.answer)
            assert m, w.answer
            assert m.group(6) == "t" + p.answer[1:]  # the plain answer is the conclusion
            first, second = int(m.group(3)), int(m.group(5))
            assert first == second or (first < second) == (p.key in ("left", "above"))
            assert max(first, second) <= grid
            assert keyword_correct(w.answer, w)  # the coordinates hold no rival word
            flip = {"left": "right", "right": "left", "above": "below", "below": "above"}
            wrong = w.answer.replace(w.key, flip[w.key])
            assert not keyword_correct(wrong, w)
    for objs in (s.objects for s in make_split_scenes("val", 50)):
        for p in relative_pairs(objs, 2, rng, rationale=grid) + relative_turns(objs, rng, rationale=grid):
            assert " so the " in p.answer and keyword_correct(p.answer, p)


def test_rationale_config_changes_only_relative_answers():
    scenes = make_split_scenes("train", 80)
    images = [f"images/{i}.png" for i in range(80)]
    base = InstructConfig(relative_pairs=1, region_turns=2, relative_chats=0.5)
    plain = instruction_records(scenes, images, config=base)
    why = instruction_records(scenes, images, config=dataclasses.replace(base, relative_rationale=3))
    assert [r["id"] for r in plain] == [r["id"] for r in why]
    changed = 0
    for r, s in zip(plain, why):
        for t, u in zip(r["conversations"], s["conversations"], strict=True):
            if t["value"] != u["value"]:
                changed += 1
                assert t["from"] == "gpt" and " so the " in u["value"] and u["value"].endswith(t["value"][4:])
    assert changed > 40


def test_region_cells_read_column_and_row_before_the_region():
    cols, rows = {1: "left", 2: "", 3: "right"}, {1: "top", 2: "", 3: "bottom"}
    for scene in make_split_scenes("train", 100):
        for o in scene.objects:
            plain, cells = where_probe(o), where_probe(o, cells=True)
            assert (cells.question, cells.key, cells.kind) == (plain.question, plain.key, plain.kind)
            m = re.fullmatch(r"The (\w+ \w+) is in column (\d) and row (\d), (.+)\.", cells.answer)
            assert m and m.group(4) == plain.key and keyword_correct(cells.answer, cells)
            assert (" ".join(w for w in (rows[int(m.group(3))], cols[int(m.group(2))]) if w) or "center") == region(o)
    scenes = make_split_scenes("train", 60)
    images = [f"images/{i}.png" for i in range(60)]
    base = InstructConfig(relative_pairs=0, region_turns=2, relative_rationale=3)
    plain = instruction_records(scenes, images, config=base)
    cells = instruction_records(scenes, images, config=dataclasses.replace(base, region_cells=True))
    changed = 0
    for r, s in zip(plain, cells):
        for q, t, u in zip(r["conversations"][::2], r["conversations"][1::2], s["conversations"][1::2], strict=True):
            if t["value"] != u["value"]:
                changed += 1
                assert q["value"].split("\n")[-1].startswith("Where is the ")
                assert re.fullmatch(r"The \w+ \w+ is in column \d and row \d, (in|at|on) the [a-z ]+\.", u["value"])
    assert changed > 60  # two region turns a conversation, and some position probes
