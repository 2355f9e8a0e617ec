"""Continuous batching: one background thread decodes every active sequence of a causal LM together.

Requests wait in a bounded queue (`QueueFull` beyond it). At every step the engine admits waiting
sequences (prefilling the new arrivals together, left-padded) into the running batch, then runs ONE
forward pass of shape (B, 1) for all active rows over a shared, spliced key/value cache (`BatchKV`),
and picks each row's next token with that request's sampling settings. A row decoding alone takes
`generate`'s batch-1 decode step instead (`decode_step.FusedStep`: the native whole step where it fits).
Finished and cancelled rows leave the batch at once, so new requests never wait for a whole batch to end.
With a `Speculation`, a row decoding alone verifies several proposed tokens per forward pass instead
(serve/speculation.py).
"""
from __future__ import annotations

from collections import deque

import torch

from ..decode_step import step_for
from ..generate import left_padded_lengths, pad_left, prefill_unpadded
from ..nn.packed_linear import packed_linears
from ..speculative import next_draft_tokens, speculative_round
from .batch_cache import BatchKV
from .engine_base import EngineBase, Sink, Ticket, hand_out
from .sequences import Event, Seq, SeqSpec, choose, prompt_scores, top_list
from .speculation import Speculation

__all__ = ["Engine", "Sink", "Ticket", "hand_out"]


class Engine(EngineBase):
    """`submit(specs, sink)` queues sequences; `sink(events)` is called from the engine thread."""

    COUNTERS = ("submitted", "rejected", "prefills", "steps", "row_steps", "tokens", "finished", "cancelled",
                "errors", "speculative_steps", "draft_proposed", "draft_accepted")
    MEAN_BATCH = ("row_steps", "steps")

    def __init__(self, model, max_batch: int = 32, max_queue: int = 64, name: str = "model",
                 speculation: Speculation | None = None):
        super().__init__(model, max_batch, max_queue, name)
        self._waiting: deque[Seq] = deque()
        self._rows: list[Seq] = []
        self._kv = BatchKV(model, self.context)
        if speculation is not None:
            speculation.check(model)
        self.speculation = speculation
        self._proposers: dict[int, tuple] = {}  # id(seq) -> (its proposer, tokens to propose next) (speculation)
        self._fused: tuple | None = None  # (cache, decode step over it) for a lone row (`_lone_step`)

    # ----- public, any thread -----------------------------------------------------------------
    def submit(self, specs: list[SeqSpec], sink: Sink) -> Ticket:
        """Queue `specs` (all or none). Raises ValueError for a bad spec, QueueFull over the bound."""
        self._check_request_size(len(specs))
        for i, spec in enumerate(specs):
            spec.cfg.validate()
            if not spec.prompt:
                raise ValueError(f"sequence {i}: the prompt is empty")
            if len(spec.prompt) + spec.cfg.max_new_tokens > self.context:
                raise ValueError(f"sequence {i}: {len(spec.prompt)} prompt tokens + {spec.cfg.max_new_tokens} "
                                 f"new tokens exceed the context length {self.context}")
        seqs = [Seq(spec, i, sink) for i, spec in enumerate(specs)]
        self._enqueue(self._waiting, seqs, len(seqs))
        return Ticket(self, seqs)

    def cancel(self, seqs: list[Seq]) -> None:
        with self._cond:
            for s in seqs:
                if s.done or s.cancelled:
                    continue
                s.cancelled = True
                if s in self._waiting:  # never started: leave now, freeing its queue place
                    self._waiting.remove(s)
                    s.done = True
                    self.counters["cancelled"] += 1
            self._cond.notify_all()

    def _waiting_count(self) -> int:
        return len(self._waiting)

    def _active_count(self) -> int:
        return len(self._rows)

    # ----- engine thread ----------------------------------------------------------------------
    def _serve(self) -> None:
        with packed_linears(self.model):  # oneDNN packed weights for the batched decode steps
            self._loop()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._waiting and not self._rows:
                    self._cond.wait()
                if self._stop:
                    break
            try:
                self._drop_cancelled()
                self._admit()
                if self._rows:
                    alone = self._speculative_row()
                    self._speculative_step(alone) if alone is not None else self._step()
            except Exception as e:  # a failed forward pass must not kill the server: fail those rows
                self._fail(e)
            self._flush()
        self._fail(RuntimeError("the server is shutting down"), include_waiting=True)
        self._flush()

    def _fail(self, err: Exception, include_waiting: bool = False) -> None:
        with self._cond:
            victims = self._rows + (list(self._waiting) if include_waiting else [])
            if include_waiting:
                self._waiting.clear()
        self._rows, self._kv = [], BatchKV(self.model, self.context)
        self._proposers.clear()
        self._fused = None
        self.counters["errors"] += len(victims)
        for s in victims:
            if not s.done:
                self._finish(s, "error", f"{type(err).__name__}: {err}")

    def _drop_cancelled(self) -> None:
        keep = [i for i, s in enumerate(self._rows) if not s.cancelled]
        if len(keep) < len(self._rows):
            for s in self._rows:
                if s.cancelled:
                    self._finish(s, "cancelled")
            self._kv.keep(keep)
            self._rows = [self._rows[i] for i in keep]

    def _admit(self) -> None:
        picked: list[Seq] = []
        with self._cond:
            while self._waiting and len(self._rows) + len(picked) < self.max_batch:
                cand = [*picked, self._waiting[0]]
                lens = [len(s.spec.prompt) for s in cand]
                rem = [s.remaining for s in self._rows] + [s.spec.cfg.max_new_tokens - 1 for s in cand]
                if not self._kv.fits(max(lens), lens, rem):
                    break  # first come, first served: wait for rows to finish rather than skip ahead
                picked.append(self._waiting.popleft())
        if picked:
            self._prefill(picked)

    def _prefill(self, seqs: list[Seq]) -> None:
        """Prefill new arrivals together; on any failure they (and only they) end with an error."""
        try:
            self._prefill_join(seqs)
        except Exception as e:
            for s in seqs:
                if not s.done:
                    self.counters["errors"] += 1
                    self._finish(s, "error", f"{type(e).__name__}: {e}")

    def _image_embeds(self, seqs: list[Seq], ids: torch.Tensor) -> torch.Tensor | None:
        """(k, P, C) prompt embeddings with image features at the placeholders when any prompt has images
        (features computed once per image tensor: the choices of a request share theirs), else None."""
        if all(s.spec.images is None for s in seqs):
            return None
        feats: dict[int, torch.Tensor] = {}
        for s in seqs:
            if s.spec.images is not None and id(s.spec.images) not in feats:
                feats[id(s.spec.images)] = self.model.image_features(s.spec.images.to(self.device))  # (N, I, C)
        rows = [feats[id(s.spec.images)] for s in seqs if s.spec.images is not None]
        return self.model.embed(ids, torch.cat(rows))  # (k, P, C)

    @torch.inference_mode()
    def _prefill_join(self, seqs: list[Seq]) -> None:
        pad = 1 if getattr(getattr(self.model, "config", None), "image_token_id", None) == 0 else 0
        ids, mask = pad_left([s.spec.prompt for s in seqs], pad)  # (k, P); padding is never an image slot
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (k, P)
        full = any(s.spec.prompt_logprobs for s in seqs)
        cache = self.model.new_cache(len(seqs), ids.shape[1])
        padded = not bool(mask.all())
        lengths = left_padded_lengths(mask) if padded and not full and \
            getattr(self.model, "row_independent", False) else None
        embeds = self._image_embeds(seqs, ids)
        if lengths is not None:  # prompts of different lengths: prefill each length group without padding
            logits = prefill_unpadded(self.model, ids, lengths, cache, embeds)[:, None].float()  # (k, 1, V)
        elif embeds is not None:
            logits = self.model(None, attention_mask=mask if padded else None, position_ids=pos, cache=cache,
                                last_only=not full, inputs_embeds=embeds).float()  # (k, P or 1, V)
        else:
            logits = self.model(ids, attention_mask=mask if padded else None, position_ids=pos,
                                cache=cache, last_only=not full).float()  # (k, P or 1, V)
        self.counters["prefills"] += 1
        for j, s in enumerate(seqs):
            if s.spec.prompt_logprobs:
                P = len(s.spec.prompt)
                lp = logits[j, ids.shape[1] - P:].log_softmax(-1)  # (P, V)
                self._emit(s, Event(s.index, prompt_logprobs=prompt_scores(lp, s.spec.prompt, s.spec.logprobs or 0)))
        live = [j for j, s in enumerate(seqs) if not self._start(s)]
        pending = [j for j in live if not self._accept(seqs[j], logits[j, -1])]
        if not pending:
            return
        if len(pending) < len(seqs):
            cache.reorder(torch.tensor(pending, dtype=torch.long, device=self.device))
        joined = [seqs[j] for j in pending]
        self._kv.join(cache, [len(s.spec.prompt) for s in joined],
                      [s.remaining for s in self._rows] + [s.remaining for s in joined])
        self._rows.extend(joined)

    def _start(self, seq: Seq) -> bool:
        """True when the sequence ends before its first token (cancelled meanwhile, or max_tokens 0)."""
        if seq.cancelled:
            self._finish(seq, "cancelled")
            return True
        if seq.spec.cfg.max_new_tokens == 0:
            self._finish(seq, "length")
            return True
        return False

    def _accept(self, seq: Seq, logits: torch.Tensor, token: int | None = None) -> bool:
        """Pick (unless given), report and record the next token of `seq` from its (V,) logits; True when
        the sequence is finished."""
        if token is None:
            token = choose([seq], logits[None])[0]
        self.counters["tokens"] += 1
        if token in seq.spec.cfg.eos_ids:
            self._finish(seq, "stop")
            return True
        seq.tokens.append(token)
        ev = Event(seq.index, token=token)
        if seq.spec.logprobs is not None:
            lp = logits.log_softmax(-1)  # (V,)
            ev.logprob, ev.top = float(lp[token]), top_list(lp, seq.spec.logprobs)
        self._emit(seq, ev)
        if seq.remaining <= 0:
            self._finish(seq, "length")
            return True
        return False

    def _lone_step(self):
        """`decode_step`'s step over the batch cache while ONE row is active (its columns moved to start at 0,
        so the cache is that row's own, as in `generate`): batch 1 takes the native whole step. Built once per
        cache object (a join or a reorder to no rows replaces it); None for models without a fused step."""
        if len(self._rows) != 1:
            return None
        self._kv.compact()  # the row's columns start at 0: no padding, positions are columns
        cache = self._kv.cache
        if self._fused is None or self._fused[0] is not cache:
            self._fused = (cache, step_for(getattr(self.model, "step_model", self.model), cache))
        return self._fused[1]

    @torch.inference_mode()
    def _step(self) -> None:
        rows = self._rows
        step = self._lone_step()
        if step is not None:  # one row: the batch-1 decode step of `generate`, the same logits
            logits = step(torch.tensor([rows[0].tokens[-1]], dtype=torch.long, device=self.device)).float()  # (1, V)
        else:
            x = torch.tensor([[s.tokens[-1]] for s in rows], dtype=torch.long, device=self.device)  # (B, 1)
            mask, pos = self._kv.step_inputs(self.device)
            logits = self.model(x, attention_mask=mask, position_ids=pos, cache=self._kv.cache,
                                last_only=True)[:, -1].float()  # (B, V)
        self.counters["steps"] += 1
        self.counters["row_steps"] += len(rows)
        self.batch_sizes[len(rows)] += 1
        tokens = choose(rows, logits)
        keep = [i for i, s in enumerate(rows) if not self._accept(s, logits[i], tokens[i])]
        self._kv.keep(keep)
        self._rows = [rows[i] for i in keep]

    # ----- speculative decoding of a row that is alone (serve/speculation.py) -------------------
    def _speculative_row(self) -> Seq | None:
        if self.speculation is None or len(self._rows) != 1 or self._waiting_count():
            return None
        s = self._rows[0]
        if s.spec.logprobs is not None or s.spec.images is not None or s.remaining < 2 or self._kv.cache.has_ring:
            return None
        return s

    @torch.inference_mode()
    def _speculative_step(self, s: Seq) -> None:
        """One round for the lone row `s` over the batch cache (`speculative.speculative_round`)."""
        proposer, k_now = self._proposers.get(id(s), (None, self.speculation.k))
        if proposer is None:
            proposer = self.speculation.new(self.model, len(s.spec.prompt) + s.spec.cfg.max_new_tokens)
        step = self._lone_step()  # compacts: the row's columns start at 0, as in a 1-row cache
        new, proposed, kept, logits = speculative_round(self.model, self._kv.cache, s.spec.prompt + s.tokens, proposer,
                                                        min(k_now, s.remaining - 1), s.spec.cfg, s.gen, step)
        self._proposers[id(s)] = (proposer, next_draft_tokens(k_now, self.speculation.k, proposed, kept))
        c = self.counters
        c["steps"] += 1
        c["row_steps"] += 1
        c["speculative_steps"] += 1
        c["draft_proposed"] += proposed
        c["draft_accepted"] += kept
        self.batch_sizes[1] += 1
        for i, t in enumerate(new):
            if self._accept(s, logits[i], t):
                self._kv.keep([])
                self._rows = []
                return

    def _finish(self, seq: Seq, reason: str, error: str | None = None) -> None:
        self._proposers.pop(id(seq), None)
        super()._finish(seq, reason, error)
