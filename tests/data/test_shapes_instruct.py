"""The shapes LLaVA instruction set: LLaVA JSON records with the image in the first human turn, every question
kind, POPE-style balance of present and absent objects, follow-ups, text-only rows, and gold answers that pass
their own key-word scoring; `generate_shapes` writes it per split."""
import json
import random
from collections import Counter

from lingvis.data.llava_json import read_llava_json
from lingvis.data.shapes import generate_shapes, make_split_scenes
from lingvis.data.shapes_instruct import KINDS, exists_probes, follow_up, instruction_records, scene_probes
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
