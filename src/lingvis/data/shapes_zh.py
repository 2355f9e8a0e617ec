"""Aligned English/Chinese descriptions of shapes scenes, for the built-in translation corpus.

The two sides differ in word order: Chinese puts locations before the verb ("在...的左边"),
uses existential "有" with the location first, and marks questions with "吗"/"什么".
"""

from __future__ import annotations

import random
from typing import Callable

from lingvis.data.shapes_language import (
    NUMBER_WORDS, REGION_PHRASES, RELATION_PHRASES, article, join_list, np_indefinite,
)
from lingvis.data.shapes_scene import Scene, ShapeObject, dominant_relation, region

ZH_COLOURS = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色",
              "orange": "橙色"}
ZH_SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形",
             "cross": "十字形"}
ZH_SIZES = {"small": "小的", "large": "大的"}
ZH_RELATIONS = {"left of": "左边", "right of": "右边", "above": "上面", "below": "下面"}
ZH_REGIONS = {"top left": "左上角", "top right": "右上角", "bottom left": "左下角",
              "bottom right": "右下角", "top": "上方", "bottom": "下方", "left": "左侧",
              "right": "右侧", "center": "中间"}
ZH_NUMBERS = {1: "一", 2: "两", 3: "三"}

Pair = tuple[str, str]


def zh_np(o: ShapeObject, with_size: bool = True) -> str:
    """'一个小的红色圆形'."""
    size = ZH_SIZES[o.size] if with_size else ""
    return f"一个{size}{ZH_COLOURS[o.colour]}{ZH_SHAPES[o.shape]}"


def zh_join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "、".join(items[:-1]) + "和" + items[-1]


def _list(scene: Scene, rng: random.Random) -> Pair:
    objs = scene.objects
    return join_list([np_indefinite(o) for o in objs]), zh_join([zh_np(o) for o in objs])


def _count(scene: Scene, rng: random.Random) -> Pair:
    objs = scene.objects
    n = len(objs)
    noun = "shape" if n == 1 else "shapes"
    en = f"there {'is' if n == 1 else 'are'} {NUMBER_WORDS[n]} {noun}: " + join_list(
        [np_indefinite(o) for o in objs])
    return en, f"图中有{ZH_NUMBERS[n]}个形状：" + zh_join([zh_np(o) for o in objs])


def _region(scene: Scene, rng: random.Random) -> Pair:
    o = rng.choice(scene.objects)
    where = region(o)
    return f"{np_indefinite(o)} {REGION_PHRASES[where]}", f"{ZH_REGIONS[where]}有{zh_np(o)}"


def _related_pair(scene: Scene, rng: random.Random) -> tuple[ShapeObject, str, ShapeObject] | None:
    objs = scene.objects
    pairs = [(a, dominant_relation(a, b), b) for a in objs for b in objs if a is not b]
    pairs = [p for p in pairs if p[1] is not None]
    return rng.choice(pairs) if pairs else None


def _relation(scene: Scene, rng: random.Random) -> Pair | None:
    picked = _related_pair(scene, rng)
    if picked is None:
        return None
    a, rel, b = picked
    en = f"{np_indefinite(a)} {RELATION_PHRASES[rel]} {np_indefinite(b)}"
    return en, f"{zh_np(a)}在{zh_np(b)}的{ZH_RELATIONS[rel]}"


def _there_is_relation(scene: Scene, rng: random.Random) -> Pair | None:
    picked = _related_pair(scene, rng)
    if picked is None:
        return None
    a, rel, b = picked
    en = f"there is {np_indefinite(a)} {RELATION_PHRASES[rel]} {np_indefinite(b)}"
    return en, f"在{zh_np(b)}的{ZH_RELATIONS[rel]}有{zh_np(a)}"


def _question(scene: Scene, rng: random.Random) -> Pair:
    o = rng.choice(scene.objects)
    kind = rng.choice(("exists", "colour", "count"))
    if kind == "exists":
        return (f"is there {article(o.colour)} {o.colour} {o.shape}?",
                f"有{ZH_COLOURS[o.colour]}的{ZH_SHAPES[o.shape]}吗？")
    if kind == "colour":
        return (f"what colour is the {o.size} {o.shape}?",
                f"{ZH_SIZES[o.size]}{ZH_SHAPES[o.shape]}是什么颜色？")
    return "how many shapes are there?", "有几个形状？"


TEMPLATES: dict[str, Callable[[Scene, random.Random], Pair | None]] = {
    "list": _list, "count": _count, "region": _region, "relation": _relation,
    "there_is_relation": _there_is_relation, "question": _question,
}


def scene_sentence_pairs(scene: Scene, rng: random.Random) -> list[Pair]:
    """Every template's (English, Chinese) sentence for the scene (templates that apply)."""
    return [p for f in TEMPLATES.values() if (p := f(scene, rng)) is not None]
