"""Request bodies in the OpenAI shape (plus the vision endpoints OpenAI has no shape for).

Fields OpenAI does not define are ignored, as OpenAI-compatible servers do; OpenAI fields that lingvis does not
implement (`UNSUPPORTED`: tools, response_format, logit_bias, ...) and values lingvis cannot honour are rejected
with a 400 naming the field, never silently ignored. Responses are built in `responses.py`.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

# OpenAI request fields lingvis does not implement, each with the values that mean "not used" (clients may
# send those); any other value is a 400 naming the field.
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "tools": (None, []), "tool_choice": (None, "none"), "parallel_tool_calls": (None,),
    "functions": (None, []), "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}), "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0),
    "audio": (None,), "modalities": (None, ["text"]), "prediction": (None,), "reasoning_effort": (None,),
    "web_search_options": (None,), "store": (None, False), "verbosity": (None,),
}


def unsupported_field(req: BaseModel) -> str | None:
    """The first OpenAI field of `req` that lingvis does not implement and that is set to a value in use."""
    extra = req.model_extra or {}
    for name, neutral in UNSUPPORTED.items():
        value = extra.get(name, getattr(req, name, None))
        if value is not None and not any(type(value) is type(n) and value == n for n in neutral):
            return name
    return None

TokenIds = list[StrictInt]
PromptType = Union[StrictStr, list[StrictStr], Annotated[TokenIds, Field(min_length=1)], list[TokenIds]]


class StreamOptions(BaseModel):
    include_usage: bool = False


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="allow")  # kept to check them against UNSUPPORTED

    model: str | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1, description="vLLM extension; -1 or None: off")
    repetition_penalty: float = Field(1.0, gt=0.0)
    stop: StrictStr | list[StrictStr] | None = Field(None, max_length=16)
    seed: int | None = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = Field(False, description="vLLM extension: keep generating after the end token")
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    user: str | None = None
    # extensions for encoder-decoder (translation) models; other models reject them when set
    num_beams: int | None = Field(None, ge=1, le=32, description="beam search width (translation models)")
    length_penalty: float | None = Field(None, description="beam search: score / length ** length_penalty")
    early_stopping: bool | Literal["never"] | None = Field(
        None, description="beam search: stop once num_beams hypotheses ended (true), heuristically (false), "
        "or search exhaustively ('never')")
    target_lang: str | None = Field(None, min_length=1, description="target language of a translation model")

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionRequest(SamplingFields):
    prompt: PromptType
    max_tokens: int | None = Field(16, ge=0)
    logprobs: int | None = Field(None, ge=0)
    echo: bool = False
    best_of: int | None = Field(None, ge=1)
    suffix: str | None = None


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


class VideoURL(BaseModel):
    url: str = Field(description="a data:video/...;base64 URL (http(s) only from hosts the operator allows)")


class VideoPart(BaseModel):
    type: Literal["video_url"]
    video_url: VideoURL


ContentPart = Annotated[Union[TextPart, ImagePart, VideoPart], Field(discriminator="type")]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0)


class EmbeddingRequest(BaseModel):
    model: str | None = None
    input: PromptType
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class ZeroShotRequest(BaseModel):
    model: str | None = None
    image: str = Field(description="a data: URL or bare base64 of a PNG/JPEG/... image")
    labels: list[StrictStr] = Field(min_length=1, max_length=1000)
    template: str = Field("a photo of a {}.", description="prompt for each label; {} is the label")


class ImageSearchRequest(BaseModel):
    model: str | None = None
    query: str = Field(min_length=1)
    top_k: int = Field(8, ge=1, le=100)


class VideoClassifyRequest(BaseModel):
    model: str | None = None
    video: str = Field(description="a data:video/...;base64 URL (or bare base64) of an mp4/webm/... file")
    top_k: int = Field(5, ge=1, le=100)
    clips: int = Field(1, ge=1, le=16, description="clips sampled across the video (scores averaged)")


class VideoSearchRequest(BaseModel):
    model: str | None = None
    query: str = Field(min_length=1)
    top_k: int = Field(8, ge=1, le=100)


class CaptionRequest(BaseModel):
    model: str | None = None
    image: str
    max_tokens: int = Field(32, ge=1)
    num_beams: int = Field(1, ge=1, le=16)


class VQARequest(BaseModel):
    model: str | None = None
    image: str
    question: str = Field(min_length=1)
    top_k: int = Field(3, ge=1, le=50)


class TokenizeRequest(BaseModel):
    model: str | None = None
    prompt: str
    add_special_tokens: bool = False


class DetokenizeRequest(BaseModel):
    model: str | None = None
    tokens: TokenIds
