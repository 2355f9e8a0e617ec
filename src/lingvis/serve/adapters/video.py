"""Video models: classification (/v1/videos/classify), text-to-video search over the operator's
`--video-folder` (/v1/videos/search, video CLIP), and video captioners / video QA in chat (a video_url part
plus the last user text: a question is answered, no question gets a caption). Videos arrive as base64 data
URLs and are decoded from a private temporary file off the event loop."""
from __future__ import annotations

import threading
from pathlib import Path

from .. import responses as R
from ..errors import APIError, bad_request
from ..schemas import ChatCompletionRequest, VideoClassifyRequest, VideoSearchRequest
from ..sse import event_stream
from ..videos import decode_video_bytes, load_video_part, media_parts, with_video_file
from .base import CHAT, Adapter
from .registry import register_adapter
from .vision_chat import last_user_text

VIDEO_CLASSIFY, VIDEO_SEARCH = "video_classify", "video_search"


@register_adapter("video_classifier", lambda m: getattr(m, "family", None) == "video_classifier")
class VideoClassifierAdapter(Adapter):
    capabilities = frozenset({VIDEO_CLASSIFY})
    needs_tokenizer = False

    def describe(self) -> dict:
        c = self.model.config
        return {**super().describe(), "labels": c.labels, "num_frames": c.num_frames}

    async def classify(self, req: VideoClassifyRequest) -> dict:
        from ...video_predict import classify_videos

        raw = decode_video_bytes(req.video, "video", self.config.max_video_bytes)
        top = min(req.top_k, len(self.model.config.labels))

        def work():
            return with_video_file(raw, "video", lambda p: classify_videos(self.model, [p], req.clips, top)[0])

        r = await self.blocking(work)
        return {"object": "video.classification", "model": self.name, "label": r["label"], "score": r["score"],
                "data": r["top5"]}


class VideoFolderIndex:
    """Video embeddings of a folder, rebuilt when its files change."""

    def __init__(self, folder: Path):
        self.folder, self.signature, self.index, self.skipped = folder, None, None, []
        self._lock = threading.Lock()

    def get(self, model):
        from ...video.readers import list_videos
        from ...video_predict import build_video_index

        with self._lock:
            paths = list_videos(self.folder)
            sig = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths if p.is_file())
            if sig != self.signature:
                errors: list[str] = []
                self.index = build_video_index(model, paths, errors=errors)
                self.signature, self.skipped = sig, errors
            return self.index


@register_adapter("video_clip", lambda m: getattr(m, "family", None) == "video_clip")
class VideoCLIPAdapter(Adapter):
    capabilities = frozenset()

    def __init__(self, name, model, tokenizer, path, config):
        super().__init__(name, model, tokenizer, path, config)
        self.folder = VideoFolderIndex(Path(config.video_folder)) if config.video_folder else None
        if self.folder is not None:
            self.capabilities = frozenset({VIDEO_SEARCH})

    def describe(self) -> dict:
        return {**super().describe(), "video_folder": str(self.folder.folder) if self.folder else None}

    async def search(self, req: VideoSearchRequest) -> dict:
        from ...video_predict import search_videos

        if self.folder is None:
            raise APIError(400, "the server has no video folder; start it with --video-folder DIR",
                           "invalid_request_error", None, "no_video_folder")

        def work():
            try:
                index = self.folder.get(self.model)
            except (FileNotFoundError, ValueError) as e:
                raise APIError(500, f"cannot index the video folder: {e}", "server_error", None,
                               "video_folder_error") from e
            return search_videos(self.model, self.tokenizer, index, req.query, req.top_k)

        hits = await self.blocking(work)
        root = self.folder.folder
        return {"object": "list", "model": self.name, "query": req.query,
                "data": [{"file": str(p.relative_to(root)) if p.is_relative_to(root) else p.name, "score": s}
                         for p, s in hits]}


@register_adapter("video_captioner", lambda m: getattr(m, "family", None) == "video_captioner")
class VideoCaptionerAdapter(Adapter):
    """Chat about the conversation's last video: the last user text is the question (none: a caption)."""
    capabilities = frozenset({CHAT})

    def describe(self) -> dict:
        return {**super().describe(), "context_length": self.model.context_length,
                "num_frames": self.model.config.num_frames}

    async def chat_answer(self, req: ChatCompletionRequest, request) -> object:
        from ...recipes.video_caption import answer_questions, caption_videos

        parts = media_parts(req.messages)
        if any(kind == "image" for kind, _, _ in parts):
            raise bad_request(f"model {self.name!r} reads videos, not images: send video_url parts", "messages",
                              "unsupported_content")
        if not parts:
            raise bad_request(f"model {self.name!r} answers about videos: add a video_url part (a data:video/..."
                              ";base64 URL) to a user message", "messages", "video_required")
        if req.n != 1:
            raise bad_request("video chat gives one answer (n must be 1)", "n", "unsupported_parameter")
        _, param, url = parts[-1]
        raw = await load_video_part(url, param, self.config)
        text = last_user_text(req)
        limit = req.max_completion_tokens or req.max_tokens or 32

        def work(path):
            if text:
                return answer_questions(self.model, self.tokenizer, [(path, text)], min(limit, 16))[0]
            return caption_videos(self.model, self.tokenizer, [path], 3, limit)[0]

        reply = await self.blocking(lambda: with_video_file(raw, param, work))
        rid = R.new_id("chatcmpl")
        asked, said = len(self.tokenizer.encode(text)), len(self.tokenizer.encode(reply))
        usage = {"prompt_tokens": asked, "completion_tokens": said, "total_tokens": asked + said}
        if not req.stream:
            return {"id": rid, "object": "chat.completion", "created": R.now(), "model": self.name, "usage": usage,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": None},
                                 "logprobs": None, "finish_reason": "stop"}]}

        async def chunks():
            yield R.chat_chunk(rid, self.name, 0, {"role": "assistant", "content": ""}, None)
            yield R.chat_chunk(rid, self.name, 0, {"content": reply}, None)
            yield R.chat_chunk(rid, self.name, 0, {}, "stop")

        return event_stream(chunks(), lambda: None)
