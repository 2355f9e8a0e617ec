"""Request bodies in the OpenAI shape (plus the vision endpoints OpenAI has no shape for).

Unknown fields are ignored, as OpenAI-compatible servers do; known fields with values lingvis cannot honour
are rejected with a 400 naming the field. Responses are built in `responses.py`.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, StrictInt, StrictStr

TokenIds = list[StrictInt]
PromptType = Union[StrictStr, list[StrictStr], Annotated[TokenIds, Field(min_length=1)], list[TokenIds]]


class StreamOptions(BaseModel):
    include_usage: bool = False


class SamplingFields(BaseModel):
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
    logit_bias: dict[str, float] | None = None
    user: str | None = None

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


ContentPart = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]


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
