"""Video captioning and video QA with one model (`video_captioner`): video tokens -> cross-attending GPT decoder.

Captioning: MSR-VTT-style JSON or WebVid CSV, every caption of a video a training target, CIDEr-D / BLEU-4 on
held-out videos. QA (`qa=True`): MSRVTT-QA-style JSON; the decoder learns the answer as the continuation of the
question (loss on the answer only; `tasks.video_qa`), a training item is a video with all of its questions (the
batch size counts videos), and it answers by continuing the question greedily; validation (and the best
checkpoint) is exact-answer accuracy. A BPE tokenizer is trained on
the texts; unreadable videos are skipped and counted."""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .. import api
from ..beam import generate_tokens
from ..data.images import SafeDataset, SkipCounter
from ..models import registry
from ..models.video_captioner import VideoCaptioner
from ..tasks.caption import CaptionSample, CaptionTask
from ..tasks.seq2seq import cut_at_eos
from ..tasks.video_qa import QASample, VideoQATask
from ..tokenizers import Tokenizer, train_bpe
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from ..video.dataset import VIDEO_ERRORS, VideoClips
from ..video.readers import read_captioned_videos, read_video_qa
from ..video.records import VideoRecord
from .translate import SPECIALS
from .video_data import sampling_for, split_videos, transform_for_video

DEFAULT_PRESET = "video-captioner-tiny"


@dataclass
class VideoCaptionArgs:
    out: str
    data: str                        # captions (MSR-VTT JSON / WebVid CSV) or, with qa, a video QA JSON
    val_data: str | None = None
    video_root: str | None = None
    qa: bool = False
    preset: str | None = None
    model: str | None = None         # continue a video captioner (its tokenizer too)
    vocab_size: int = 400
    label_smoothing: float = 0.1
    question_weight: float = 0.3     # QA: weight of the question tokens' loss (the answer's is 1)
    val_fraction: float = 0.05
    max_val: int = 64
    num_frames: int | None = None    # sampling overrides (default: the preset's)
    sampling: str | None = None
    sample_fps: float | None = None
    short: str = "error"
    augment: bool = False
    cache_frames: bool = False
    overrides: dict = field(default_factory=dict)  # VideoCaptionerConfig fields


def qa_text(question: str, answer: str) -> str:
    """The training text of a QA pair: the answer continues the question."""
    return f"{question.strip()} {answer.strip()}"


def qa_records(path: str | Path, video_root: str | None = None) -> list[VideoRecord]:
    """Video QA JSON -> one record per video whose "captions" are its "question answer" texts."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for q in read_video_qa(path, video_root):
        groups[str(q["path"])].append((q["question"].strip(), q["answer"].strip()))
    if not groups:
        raise ValueError(f"{path}: no questions")
    return [VideoRecord(Path(p), captions=[qa_text(*qa) for qa in pairs], meta={"qa": pairs})
            for p, pairs in groups.items()]


def load_records(path: str, args: VideoCaptionArgs) -> list[VideoRecord]:
    records = qa_records(path, args.video_root) if args.qa else read_captioned_videos(path, args.video_root)
    if not records:
        raise ValueError(f"{path}: no captioned videos")
    return records


class VideoCaptionPairs(Dataset):
    """(clip, caption) pairs: with `all_captions` every caption of a video is a sample (training), else one
    sample per video with its first caption. Items are `CaptionSample`s whose `pixels` is the (T, C, H, W) clip."""

    def __init__(self, clips: VideoClips, tokenizer: Tokenizer, max_len: int, all_captions: bool = True):
        self.clips = clips
        caps = [list(r.captions) for r in clips.records]
        texts = sorted({t for c in caps for t in c})
        self.ids = {t: ids[:max_len - 1] for t, ids in zip(texts, tokenizer.encode_batch(texts))}
        for r, c in zip(clips.records, caps):
            if not c or any(not self.ids[t] for t in c):
                raise ValueError(f"{r.path}: a video needs non-empty captions, got {c!r}")
        self.captions = caps
        self.index = [(i, j) for i, c in enumerate(caps) for j in (range(len(c)) if all_captions else range(1))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> CaptionSample:
        i, j = self.index[k]
        return CaptionSample(self.clips[i]["video"], self.ids[self.captions[i][j]], self.captions[i])


class VideoQAPairs(Dataset):
    """Video QA items from `qa_records`: with `per_video` one item per video holding a `QASample` for each of
    its questions (the clip is encoded once per step; training), else one item per question. The question
    and the answer are tokenized apart, as at inference (prompt = the question's ids)."""

    def __init__(self, clips: VideoClips, tokenizer: Tokenizer, max_len: int, per_video: bool = True):
        self.clips, self.per_video = clips, per_video
        self.pairs = [list(r.meta["qa"]) for r in clips.records]
        texts = sorted({t for ps in self.pairs for qa in ps for t in qa})
        enc = dict(zip(texts, tokenizer.encode_batch(texts)))
        self.ids: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        for r, ps in zip(clips.records, self.pairs):
            for q, a in ps:
                if not enc[q] or not enc[a]:
                    raise ValueError(f"{r.path}: empty question or answer in {(q, a)!r}")
                if len(enc[q]) + len(enc[a]) > max_len - 1:
                    raise ValueError(f"{r.path}: question + answer {q!r} {a!r} is {len(enc[q]) + len(enc[a])} "
                                     f"tokens, over the decoder's {max_len - 1}")
                self.ids[(q, a)] = (enc[q], enc[a])
        self.index = [(i, None) for i in range(len(self.pairs))] if per_video else \
            [(i, j) for i, ps in enumerate(self.pairs) for j in range(len(ps))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        i, j = self.index[k]
        video = self.clips[i]["video"]  # (T, C, H, W)
        qas = self.pairs[i] if j is None else [self.pairs[i][j]]
        items = [QASample(video, *self.ids[qa]) for qa in qas]
        return items if j is None else items[0]


def make_model(args: VideoCaptionArgs, tok: Tokenizer) -> VideoCaptioner:
    if args.model:
        return api.load_as(args.model, "video_captioner", "a video captioner").train()
    _, cfg = registry.preset_of(args.preset or DEFAULT_PRESET, "video_captioner", "a video captioner",
                                **args.overrides)
    cfg.decoder = {**cfg.decoder, "vocab_size": tok.vocab_size}
    cfg.bos_id, cfg.eos_id, cfg.pad_id = tok.bos_id, tok.eos_id, tok.pad_id
    for name in ("num_frames", "sampling", "sample_fps"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    return VideoCaptioner(registry.make_config("video_captioner", dataclasses.asdict(cfg)))


def train_video_captioner(args: VideoCaptionArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume / fine-tune) a video captioner or video QA model; returns the trainer summary."""
    torch.manual_seed(cfg.seed)
    records = load_records(args.data, args)
    if args.val_data:
        train, val = records, load_records(args.val_data, args)[:args.max_val]
    else:
        train, val = split_videos(records, args.val_fraction, cfg.seed, args.max_val)
    if resumable(args.out, resume):
        tok = api.load_tokenizer(args.out)
        model = VideoCaptioner(api.load(args.out).config)
    else:
        tok = api.load_tokenizer(args.model) if args.model else \
            train_bpe([c for r in train for c in r.captions], args.vocab_size, SPECIALS)
        model = make_model(args, tok)
    ctx, skipped = model.context_length, SkipCounter()
    train_clips = VideoClips(train, sampling_for(model, short=args.short),
                             transform_for_video(model, train=args.augment, seed=cfg.seed), train=True, seed=cfg.seed,
                             cache_frames=args.cache_frames)
    val_clips = VideoClips(val, sampling_for(model, short=args.short), transform_for_video(model),
                           cache_frames=args.cache_frames)
    if args.qa:
        train_set = SafeDataset(VideoQAPairs(train_clips, tok, ctx), skipped, errors=VIDEO_ERRORS)
        val_set = SafeDataset(VideoQAPairs(val_clips, tok, ctx, per_video=False), skipped, errors=VIDEO_ERRORS)
        longest = max(len(a) for _, a in train_set.dataset.ids.values())
        task = VideoQATask(model.config.bos_id, model.config.eos_id, model.config.pad_id, args.label_smoothing,
                           max_new_tokens=longest + 2, question_weight=args.question_weight)
    else:
        train_set = SafeDataset(VideoCaptionPairs(train_clips, tok, ctx), skipped, errors=VIDEO_ERRORS)
        val_set = SafeDataset(VideoCaptionPairs(val_clips, tok, ctx, all_captions=False), skipped,
                              errors=VIDEO_ERRORS)
        longest = max(len(ids) for ids in train_set.dataset.ids.values())
        task = CaptionTask(tok, model.config.bos_id, model.config.eos_id, model.config.pad_id, args.label_smoothing,
                           max_new_tokens=min(ctx - 1, longest + 2))
    summary = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tok,
                      meta={"task": "video-qa" if args.qa else "video-caption"}).fit(resume)
    summary.update(train_pairs=len(train_set), train_videos=len(train), val_videos=len(val),
                   skipped_videos=skipped.count, parameters=sum(p.numel() for p in model.parameters()))
    return summary


def _clips(model, paths: Sequence[str | Path], batch_size: int, errors: dict[int, str] | None):
    from ..video_predict import video_batches

    for idx, batch in video_batches(model, paths, 1, batch_size, errors):
        yield idx, batch[:, 0].to(next(model.parameters()).device)  # (B, T, C, H, W)


@torch.inference_mode()
def caption_videos(model, tok: Tokenizer, paths: Sequence[str | Path], num_beams: int = 3, max_new_tokens: int = 32,
                   batch_size: int = 8, errors: dict[int, str] | None = None) -> dict[int, str]:
    """{position in `paths`: caption} for the readable videos (unreadable ones go to `errors`, or raise)."""
    out: dict[int, str] = {}
    for idx, video in _clips(model, paths, batch_size, errors):
        n = min(max_new_tokens, model.context_length - 1)
        ids = model.generate(video, num_beams=num_beams, max_new_tokens=n)
        for i, row in zip(idx, cut_at_eos(ids, model.config.eos_id)):
            out[i] = tok.decode(row[1:]).strip()
    return out


@torch.inference_mode()
def answer_questions(model, tok: Tokenizer, items: Sequence[tuple[str | Path, str]], max_new_tokens: int = 8,
                     errors: dict[int, str] | None = None) -> dict[int, str]:
    """{position: answer} for (video, question) pairs: the decoder continues the question greedily. Each video
    is encoded once for all of its questions."""
    by_video: dict[str, list[int]] = defaultdict(list)
    for k, (path, _) in enumerate(items):
        by_video[str(path)].append(k)
    paths = list(by_video)
    video_errors: dict[int, str] = {}
    out: dict[int, str] = {}
    for idx, video in _clips(model, paths, 8, video_errors if errors is not None else None):
        memory = model.encode(video)  # (B, N, C)
        for b, i in enumerate(idx):
            view = model.decoder_view(memory[b:b + 1])
            for k in by_video[paths[i]]:
                prompt = [model.config.bos_id] + tok.encode(items[k][1].strip())
                n = max(1, min(max_new_tokens, model.context_length - len(prompt)))
                ids = generate_tokens(view, torch.tensor([prompt], device=memory.device), max_new_tokens=n,
                                      default_eos=model.config.eos_id, default_pad=model.config.pad_id)
                new = cut_at_eos(ids[:, len(prompt):], model.config.eos_id)[0]
                out[k] = tok.decode(new).strip()
    if errors is not None:
        for i, msg in video_errors.items():
            for k in by_video[paths[i]]:
                errors[k] = msg
    return out


@torch.inference_mode()
def chat_video_answers(model, tok: Tokenizer, items: Sequence[tuple[str | Path, str]], frames: int = 4,
                       max_new_tokens: int = 8, errors: dict[int, str] | None = None) -> dict[int, str]:
    """{position: answer} from an image-chat (llava) model that sees `frames` evenly sampled frames of each
    video as images (one `<image>` per frame, in time order) before the question; greedy decoding."""
    from ..data.llava_inputs import image_token
    from ..text_generation import generate
    from ..video.clips import frame_images

    placeholder, out = image_token(tok, model), {}
    cache: dict[str, list] = {}
    for k, (path, question) in enumerate(items):
        try:
            images = cache.setdefault(str(path), frame_images(path, frames))
        except VIDEO_ERRORS as e:
            if errors is None:
                raise
            errors[k] = str(e)
            continue
        prompt = tok.apply_chat_template([{"role": "user", "content": f"{placeholder}\n" * frames + question}],
                                         add_generation_prompt=True)
        out[k] = generate(model, tok, prompt, max_new_tokens=max_new_tokens, images=images).strip()
    return out


def evaluate_video_captions(model, tok: Tokenizer, records: Sequence[VideoRecord], num_beams: int = 3) -> dict:
    """CIDEr-D and BLEU-4 of the model's captions against every reference caption of each video."""
    from ..eval.captioning import caption_scores

    errors: dict[int, str] = {}
    hyps = caption_videos(model, tok, [r.path for r in records], num_beams, errors=errors)
    if not hyps:
        raise ValueError("none of the videos could be read: " + "; ".join(list(errors.values())[:3]))
    scores = caption_scores({i: records[i].captions for i in hyps}, hyps)
    examples = [{"video": str(records[i].path), "hyp": hyps[i], "refs": records[i].captions[:2]}
                for i in list(hyps)[:3]]
    return {"cider": scores["CIDEr-D"], "bleu4": scores["BLEU-4"], "videos": len(hyps), "skipped": len(errors),
            "examples": examples}


def evaluate_video_qa(model, tok: Tokenizer, questions: Sequence[dict], frames: int = 4) -> dict:
    """Exact-match accuracy (case, surrounding space and a final full stop ignored) over {"path", "question",
    "answer"} items, overall and per "answer_type" when the items have one. A video captioner answers by
    continuing the question; an image-chat (llava) model sees `frames` frames of the video as images."""
    errors: dict[int, str] = {}
    items = [(q["path"], q["question"]) for q in questions]
    if getattr(model, "reads_images", False):
        answers = chat_video_answers(model, tok, items, frames, errors=errors)
    else:
        answers = answer_questions(model, tok, items, errors=errors)
    if not answers:
        raise ValueError("none of the videos could be read: " + "; ".join(list(errors.values())[:3]))
    hits: dict[str, list[int]] = defaultdict(list)
    for k, a in answers.items():
        ok = int(a.lower().rstrip(".").strip() == questions[k]["answer"].strip().lower())
        hits["all"].append(ok)
        if questions[k].get("answer_type"):
            hits[questions[k]["answer_type"]].append(ok)
    acc = {kind: sum(v) / len(v) for kind, v in hits.items()}
    examples = [{"question": questions[k]["question"], "answer": questions[k]["answer"], "predicted": answers[k]}
                for k in list(answers)[:3]]
    return {"accuracy": acc.pop("all"), "per_type": acc, "questions": len(answers), "skipped": len(errors),
            "examples": examples}
