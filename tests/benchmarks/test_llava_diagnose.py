"""The llava diagnostics (how absent objects relate to a scene; position and absent-object answers counted on the
held-out questions with gold and constant answers) and the learning benchmark's reuse of an earlier captioner
baseline."""
import json

import pytest

from benchmarks import llava_diagnose as diag
from benchmarks.llava_learning import captioner_from
from lingvis.data.shapes_scene import ShapeObject
from lingvis.recipes import llava_eval
from lingvis.recipes.llava_eval import shapes_questions
from lingvis.recipes.llava_shapes import ShapesPlan


def test_absent_relation():
    objs = [ShapeObject("star", "blue", "small", 0.2, 0.2, 0.1), ShapeObject("circle", "red", "large", 0.7, 0.7, 0.18)]
    assert diag.absent_relation("blue", "square", objs) == "colour"
    assert diag.absent_relation("green", "star", objs) == "shape"
    assert diag.absent_relation("blue", "circle", objs) == "colour and shape"
    assert diag.absent_relation("green", "square", objs) == "neither"


def _asked(n):
    """The probes `diagnose` asks, in its order."""
    items, _ = shapes_questions("test", n)
    return [p for _, ps, _ in items for p in ps if p.kind == "position" or (p.kind == "exists" and p.key == "no")]


def test_diagnose_counts_gold_and_constant_answers(monkeypatch):
    n = 30
    probes = _asked(n)
    monkeypatch.setattr(llava_eval, "answer_chats", lambda m, t, chats: [p.answer for p in probes])
    gold = diag.diagnose(None, None, n)
    rel = gold["relative"]
    n_rel = rel["horizontal"]["n"] + rel["vertical"]["n"]
    assert n_rel + gold["absolute"]["n"] == n and n_rel > 0  # one position question per scene
    assert rel["horizontal"]["accuracy"] in (0.0, 100.0) and rel["vertical"]["right"] == rel["vertical"]["n"]
    assert gold["absolute"] == {"accuracy": 100.0, "n": gold["absolute"]["n"], "row": 100.0, "column": 100.0}
    assert all(k.split("->")[0] == k.split("->")[1] for k in gold["relative_gold_said"])
    for axis in ("row", "column"):
        said = gold["absolute_gold_said"][axis]
        assert sum(said.values()) == gold["absolute"]["n"] and all(k.split("->")[0] == k.split("->")[1] for k in said)
    assert sum(v["n"] for v in gold["absent_said_yes"].values()) == n and \
        all(v["yes"] == 0 for v in gold["absent_said_yes"].values())

    monkeypatch.setattr(llava_eval, "answer_chats", lambda m, t, chats: ["Yes, it is below."] * len(chats))
    const = diag.diagnose(None, None, n)
    assert all(v["yes"] == v["n"] for v in const["absent_said_yes"].values())
    assert all(k.endswith("->below") for k in const["relative_gold_said"])
    assert const["relative"]["horizontal"]["right"] == 0 and const["absolute"]["accuracy"] == 0.0
    assert const["absolute_gold_said"] == {"row": {}, "column": {}}  # no region said

    monkeypatch.setattr(llava_eval, "answer_chats", lambda m, t, chats: ["It is on the left."] * len(chats))
    left = diag.diagnose(None, None, n)["absolute_gold_said"]
    assert set(left["row"]) <= {"top->middle", "middle->middle", "bottom->middle"} and \
        set(left["column"]) <= {"left->left", "middle->left", "right->left"} and sum(left["column"].values()) > 0


def test_captioner_baseline_is_reused_only_on_the_same_split(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"log": {"plan": {"n_test": 200}}, "results": {"captioner": {"cider": 3.25}}}))
    got = captioner_from(path, ShapesPlan(n_test=200))
    assert got["cider"] == 3.25 and got["reused_from"] == str(path)
    with pytest.raises(ValueError, match="not the same split"):
        captioner_from(path, ShapesPlan(n_test=100))


def test_learning_benchmark_rejects_an_unknown_instruction_set(tmp_path):
    from benchmarks.llava_learning import run

    with pytest.raises(ValueError, match="instruct must be one of"):
        run(out=tmp_path, instruct="more")


def test_learning_benchmark_instruction_sets_and_stage1_captions(tmp_path):
    from benchmarks.llava_learning import INSTRUCT, instruct_config, run
    from lingvis.data.shapes_instruct import InstructConfig

    configs = {name: instruct_config(name) for name in INSTRUCT}
    assert configs["plain"] == InstructConfig.plain() and configs["pairs"] == InstructConfig()
    assert (configs["pope"].relative_pairs, configs["pope"].contrast_pairs, configs["pope"].region_turns) == (0, 1, 0)
    assert (configs["pope-where"].relative_pairs, configs["pope-where"].region_turns) == (0, 2)
    for name, form, weight in (("pope-where-rel", "word", 1.0), ("pope-where-relw", "word", 4.0),
                               ("pope-where-yesno", "yesno", 1.0)):
        c = configs[name]
        assert (c.relative_pairs, c.region_turns, c.relative_chats, c.relative_form, c.relative_weight) == \
            (0, 2, 0.5, form, weight)
    with pytest.raises(ValueError, match="stage1_captions must be one of"):
        run(out=tmp_path, stage1_captions="every")


def test_learning_benchmark_llm_layers():
    from benchmarks.llava_learning import with_llm_layers
    from lingvis.recipes.llava_shapes import scale_plan

    plan = scale_plan()
    assert with_llm_layers(plan, None) is plan
    deeper = with_llm_layers(plan, 8)
    assert deeper.llm == {**plan.llm, "n_layer": 8} and plan.llm["n_layer"] == 4 and deeper.stage2 == plan.stage2
    with pytest.raises(ValueError, match="llm_layers must be >= 1"):
        with_llm_layers(plan, 0)


def test_learning_benchmark_options_left_out_keep_the_plan(monkeypatch, tmp_path):
    import benchmarks.llava_learning as bench
    from lingvis.recipes.llava_shapes import scale_plan

    seen = []
    monkeypatch.setattr(bench, "train_and_evaluate", lambda out, quick, n_test, reuse, plan, captioner_results: (
        seen.append(plan), {"results": {}})[1])
    monkeypatch.setattr(bench, "report", lambda r: [])
    bench.run(out=tmp_path, scale=True)
    assert seen[-1] == scale_plan()
    bench.run(out=tmp_path, scale=True, instruct="pope-where", split_words="none", vocab_size=400,
              image_position="none")
    p = seen[-1]
    assert (p.instruct.relative_rationale, p.split_words, p.vocab_size, p.image_position) == (0, None, 400, "none")
    assert p.stage1_captions == "regions"  # not given: the plan's
    bench.run(out=tmp_path)
    assert seen[-1].instruct.relative_pairs == 0 and seen[-1].split_words is None  # the small plan: plain
