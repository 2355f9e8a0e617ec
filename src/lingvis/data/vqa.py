"""VQA data: VQAv2 questions/annotations JSON, a simple JSONL {"image", "question", "answers"}, and the
shapes generator's split files. Every problem (missing image, empty question, malformed record) is
reported with the file and the question id; `skip_bad=True` drops such questions with a warning."""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonfile import iter_jsonl


class VQADataError(ValueError):
    """A VQA file is malformed or refers to something that is not there; the message names where."""


@dataclass
class VQAExample:
    question_id: Any
    image: Path
    question: str
    answers: list[str] = field(default_factory=list)  # human answers (10 in VQAv2); empty = unlabelled
    question_type: str = ""
    answer_type: str = ""
    image_id: Any = None


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"VQA file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise VQADataError(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})") from e


def _finish(examples: list[VQAExample], problems: list[str], source: Path, skip_bad: bool) -> list[VQAExample]:
    """Raise on problems (or warn and keep the good examples when `skip_bad`)."""
    if problems and not skip_bad:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise VQADataError(f"{len(problems)} bad question(s) in {source}: " + "; ".join(problems[:5]) + more
                           + ". Fix the data or pass skip_bad=True (--skip-bad) to drop them.")
    if problems:
        warnings.warn(f"{source}: skipped {len(problems)} bad question(s), e.g. {problems[0]}", stacklevel=3)
    if not examples:
        raise VQADataError(f"{source}: no usable questions")
    return examples


def _check(ex: VQAExample, where: str, problems: list[str]) -> bool:
    if not ex.question.strip():
        problems.append(f"{where}: question {ex.question_id!r} is empty")
        return False
    if not ex.image.is_file():
        problems.append(f"{where}: question {ex.question_id!r} refers to missing image {ex.image}")
        return False
    return True


# ---- image ids -> files -------------------------------------------------------------------------
_TRAILING_ID = re.compile(r"(\d{12})$")  # COCO: COCO_val2014_000000000042.jpg


def image_files(images: Path, image_index: str | Path | None) -> dict[Any, Path] | str:
    """Map image ids to files: a COCO-style JSON with `images[{id, file_name}]`, a filename template
    such as 'COCO_val2014_{image_id:012d}.jpg', or (default) COCO's 12-digit trailing ids in `images`."""
    if image_index is not None and "{" in str(image_index):
        return str(image_index)
    if image_index is not None:
        path = Path(image_index)
        data = _load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise VQADataError(f"{path}: an image index needs an 'images' list of {{id, file_name}}")
        out = {}
        for k, im in enumerate(data["images"]):
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                raise VQADataError(f"{path}: images[{k}] needs 'id' and 'file_name'")
            out[im["id"]] = images / im["file_name"]
        return out
    if not images.is_dir():
        raise FileNotFoundError(f"image folder not found: {images}")
    out = {}
    for f in images.iterdir():
        m = _TRAILING_ID.search(f.stem)
        if m:
            out[int(m.group(1))] = f
    return out


def _image_path(files: dict | str, images: Path, image_id: Any) -> Path:
    if isinstance(files, str):
        return images / files.format(image_id=image_id)
    return files.get(image_id, images / f"<no file for image_id {image_id}>")


# ---- VQAv2 JSON ---------------------------------------------------------------------------------
def _annotations_by_qid(path: Path) -> dict[Any, dict]:
    data = _load_json(path)
    anns = data.get("annotations") if isinstance(data, dict) else data
    if not isinstance(anns, list):
        raise VQADataError(f"{path}: expected an 'annotations' list (VQAv2 annotations JSON)")
    out = {}
    for k, ann in enumerate(anns):
        if not isinstance(ann, dict) or "question_id" not in ann or not isinstance(ann.get("answers"), list):
            raise VQADataError(f"{path}: annotations[{k}] needs 'question_id' and an 'answers' list")
        out[ann["question_id"]] = ann
    return out


def _answers(ann: dict, where: str) -> list[str]:
    out = []
    for j, a in enumerate(ann["answers"]):
        text = a.get("answer") if isinstance(a, dict) else a
        if not isinstance(text, str):
            raise VQADataError(f"{where}: question {ann['question_id']!r} answers[{j}] has no string 'answer'")
        out.append(text)
    return out


def read_vqa_json(questions: str | Path, annotations: str | Path | None, images: str | Path,
                  image_index: str | Path | None = None, skip_bad: bool = False) -> list[VQAExample]:
    """VQAv2 `questions[{question_id, image_id, question}]` (+ optional `annotations[{question_id,
    answers[{answer}], question_type, answer_type}]`); images resolved by `image_files`."""
    qpath, images = Path(questions), Path(images)
    data = _load_json(qpath)
    qs = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(qs, list):
        raise VQADataError(f"{qpath}: expected a 'questions' list (VQAv2 questions JSON)")
    anns = _annotations_by_qid(Path(annotations)) if annotations is not None else {}
    files = image_files(images, image_index)
    examples, problems = [], []
    for k, q in enumerate(qs):
        if not isinstance(q, dict) or not {"question_id", "image_id"} <= set(q):
            raise VQADataError(f"{qpath}: questions[{k}] needs 'question_id', 'image_id' and 'question'")
        qid, ann = q["question_id"], anns.get(q["question_id"])
        if annotations is not None and ann is None:
            raise VQADataError(f"{qpath}: question {qid!r} has no annotation in {annotations}")
        ex = VQAExample(qid, _image_path(files, images, q["image_id"]), str(q.get("question") or ""),
                        _answers(ann, str(annotations)) if ann else [], (ann or {}).get("question_type", ""),
                        (ann or {}).get("answer_type", ""), q["image_id"])
        if _check(ex, str(qpath), problems):
            examples.append(ex)
    return _finish(examples, problems, qpath, skip_bad)


# ---- simple JSONL -------------------------------------------------------------------------------
def _jsonl_example(rec: Any, where: str, root: Path, lineno: int) -> VQAExample:
    if not isinstance(rec, dict) or not isinstance(rec.get("image"), str) or "question" not in rec:
        raise VQADataError(f"{where}: a record needs a string 'image' and a 'question'")
    answers = rec.get("answers", rec.get("answer", []))
    answers = [answers] if isinstance(answers, str) else answers
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise VQADataError(f"{where}: 'answers' must be a string or a list of strings")
    image = Path(rec["image"])
    return VQAExample(rec.get("question_id", lineno), image if image.is_absolute() else root / image,
                      str(rec["question"] or ""), answers, str(rec.get("question_type", "")),
                      str(rec.get("answer_type", "")), rec.get("image_id"))


def read_vqa_jsonl(path: str | Path, image_root: str | Path | None = None,
                   skip_bad: bool = False) -> list[VQAExample]:
    """One JSON object a line: {"image", "question", "answers": [..] or "answer"} (+ optional
    "question_id", "question_type", "answer_type"); relative image paths are under `image_root`
    (default: the file's folder). Question ids default to the line number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VQA file not found: {path}")
    root = Path(image_root) if image_root is not None else path.parent
    examples, problems = [], []
    for lineno, rec in iter_jsonl(path, VQADataError):
        ex = _jsonl_example(rec, f"{path}:{lineno}", root, lineno)
        if _check(ex, f"{path}:{lineno}", problems):
            examples.append(ex)
    return _finish(examples, problems, path, skip_bad)


# ---- dispatch -----------------------------------------------------------------------------------
def read_vqa(path: str | Path, split: str = "train", image_root: str | Path | None = None,
             skip_bad: bool = False) -> list[VQAExample]:
    """A `.jsonl` file, a VQAv2 questions `.json` (annotations and image index found by the shapes
    naming, else pass them to `read_vqa_json`), or a folder written by `generate_shapes` + `split`."""
    p = Path(path)
    if p.suffix == ".jsonl":
        return read_vqa_jsonl(p, image_root, skip_bad)
    if p.is_dir():
        p = p / f"questions_{split}.json"
        if not p.is_file():
            raise FileNotFoundError(f"{path}: no questions_{split}.json (a generate_shapes folder or a "
                                    f"VQAv2 questions file / JSONL was expected)")
    if p.suffix != ".json":
        raise VQADataError(f"{p}: expected a .jsonl file, a VQAv2 questions .json or a shapes folder")
    name = p.name.replace("questions", "annotations", 1)
    ann = p.with_name(name) if name != p.name and p.with_name(name).is_file() else None
    index = p.with_name(p.name.replace("questions", "captions", 1))
    images = Path(image_root) if image_root is not None else (p.parent / "images" if (p.parent / "images").is_dir()
                                                              else p.parent)
    return read_vqa_json(p, ann, images, index if index.is_file() and index != p else None, skip_bad)


def annotations_of(examples: list[VQAExample]) -> list[dict]:
    """VQAv2-style annotation dicts for `lingvis.eval.vqa_evaluate`."""
    return [{"question_id": e.question_id, "answers": [{"answer": a} for a in e.answers],
             "question_type": e.question_type or "all", "answer_type": e.answer_type or "all"}
            for e in examples]
