"""BERT-family encoders as sentence-embedding models (/v1/embeddings), with the checkpoint's own pooling,
normalisation and length limit (see `lingvis.embeddings`)."""
from __future__ import annotations

from ... import embeddings as emb
from ..embedding_format import embedding_response, text_inputs
from ..errors import bad_request
from ..schemas import EmbeddingRequest
from .base import EMBEDDINGS, Adapter
from .registry import register_adapter


@register_adapter("embedding", lambda m: getattr(m, "family", None) == "bert" and hasattr(m, "encode"))
class EmbeddingAdapter(Adapter):
    capabilities = frozenset({EMBEDDINGS})

    def __init__(self, name, model, tokenizer, path, config):
        super().__init__(name, model, tokenizer, path, config)
        cfg = model.config
        self.max_length = min(cfg.embed_max_length or cfg.max_positions, cfg.max_positions)
        self.vocab_size = tokenizer.vocab_size

    def describe(self) -> dict:
        c = self.model.config
        return {**super().describe(), "dimensions": c.n_embd, "pooling": c.pooling, "normalize": c.normalize,
                "max_input_tokens": self.max_length}

    def _sequences(self, inp) -> list[list[int]]:
        """Text inputs get [CLS] text [SEP] (truncated as the checkpoint says); token-id inputs are used
        as given (they must include the special tokens) and may not exceed the length limit."""
        if isinstance(inp, list) and inp and isinstance(inp[0], (int, list)):
            seqs = [inp] if isinstance(inp[0], int) else inp
            for i, s in enumerate(seqs):
                if not s or len(s) > self.max_length:
                    raise bad_request(f"input[{i}] has {len(s)} tokens; between 1 and {self.max_length} allowed",
                                      "input")
                bad = [t for t in s if not 0 <= t < self.vocab_size]
                if bad:
                    raise bad_request(f"input[{i}] holds token id {bad[0]}, outside the vocabulary of "
                                      f"{self.vocab_size}", "input")
            return [list(s) for s in seqs]
        return emb.text_ids(self.tokenizer, text_inputs(inp), self.max_length)

    async def embeddings(self, req: EmbeddingRequest) -> dict:
        seqs = self._sequences(req.input)
        vectors = await self.blocking(emb.encode_sequences, self.model, seqs)  # (N, C)
        return embedding_response(self.name, vectors, req.encoding_format, sum(map(len, seqs)), req.dimensions)
