"""Continuous batching: one background thread decodes every active sequence of a causal LM together.

Requests wait in a bounded queue (`QueueFull` beyond it). At every step the engine admits waiting
sequences (prefilling the new arrivals together, left-padded) into the running batch, then runs ONE
forward pass of shape (B, 1) for all active rows over a shared, spliced key/value cache (`BatchKV`),
and picks each row's next token with that request's sampling settings. Finished and cancelled rows
leave the batch at once, so new requests never wait for a whole batch to end.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable

import torch

from ..generate import left_padded_lengths, pad_left, prefill_unpadded
from ..nn.packed_linear import packed_linears
from .batch_cache import BatchKV
from .errors import QueueFull
from .sequences import Event, Seq, SeqSpec, choose, prompt_scores, top_list

Sink = Callable[[list[Event]], None]
COUNTERS = ("submitted", "rejected", "prefills", "steps", "row_steps", "tokens", "finished", "cancelled", "errors")


def hand_out(pairs) -> None:
    """Hand out one step's (sink, events) pairs: one wake-up per asyncio loop (sinks with `loop` and
    `deliver_all`, see runs.LoopSink), a direct call for any other sink."""
    by_loop: dict[int, list] = {}
    for sink, events in pairs:
        loop = getattr(sink, "loop", None)
        if loop is not None:
            by_loop.setdefault(id(loop), [loop, type(sink).deliver_all, []])[2].append((sink, events))
        else:
            sink(events)
    for loop, deliver, grouped in by_loop.values():
        try:
            loop.call_soon_threadsafe(deliver, grouped)
        except RuntimeError:  # the receiving event loop is gone
            pass


class Ticket:
    """The sequences of one submission; `cancel()` stops them (a disconnected client, a stop string)."""

    def __init__(self, engine: "Engine", seqs: list[Seq]):
        self.engine, self.seqs = engine, seqs

    def cancel(self, index: int | None = None) -> None:
        self.engine.cancel([s for s in self.seqs if index is None or s.index == index])


class Engine:
    """`submit(specs, sink)` queues sequences; `sink(events)` is called from the engine thread."""

    def __init__(self, model, max_batch: int = 32, max_queue: int = 64, name: str = "model"):
        if max_batch < 1 or max_queue < 1:
            raise ValueError(f"max_batch and max_queue must be >= 1, got {max_batch} and {max_queue}")
        self.model, self.name = model.eval(), name
        self.context = int(model.context_length)
        self.device = next(model.parameters()).device
        self.max_batch, self.max_queue = max_batch, max_queue
        self.counters: Counter = Counter()
        self.batch_sizes: Counter = Counter()  # rows per decode step -> steps (the /metrics histogram)
        self._waiting: deque[Seq] = deque()
        self._rows: list[Seq] = []
        self._kv = BatchKV(model, self.context)
        self._out: dict[int, tuple[Sink, list[Event]]] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # ----- public, any thread -----------------------------------------------------------------
    def start(self) -> "Engine":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"lingvis-engine-{self.name}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def submit(self, specs: list[SeqSpec], sink: Sink) -> Ticket:
        """Queue `specs` (all or none). Raises ValueError for a bad spec, QueueFull over the bound."""
        if len(specs) > self.max_queue:
            raise ValueError(f"{len(specs)} sequences in one request exceed the queue bound {self.max_queue}; "
                             "split the request")
        for i, spec in enumerate(specs):
            spec.cfg.validate()
            if not spec.prompt:
                raise ValueError(f"sequence {i}: the prompt is empty")
            if len(spec.prompt) + spec.cfg.max_new_tokens > self.context:
                raise ValueError(f"sequence {i}: {len(spec.prompt)} prompt tokens + {spec.cfg.max_new_tokens} "
                                 f"new tokens exceed the context length {self.context}")
        seqs = [Seq(spec, i, sink) for i, spec in enumerate(specs)]
        with self._cond:
            if self._stop:
                raise RuntimeError(f"the engine of {self.name} is shut down")
            if len(self._waiting) + len(seqs) > self.max_queue:
                self.counters["rejected"] += 1
                raise QueueFull(f"{self.name}: {len(self._waiting)} sequences are already waiting "
                                f"(queue bound {self.max_queue}); retry later")
            self._waiting.extend(seqs)
            self.counters["submitted"] += len(seqs)
            self._cond.notify_all()
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

    def stats(self) -> dict:
        c = self.counters
        return {"active": len(self._rows), "waiting": len(self._waiting), "max_batch": self.max_batch,
                "max_queue": self.max_queue, "context_length": self.context,
                "mean_batch": round(c["row_steps"] / c["steps"], 2) if c["steps"] else 0.0,
                **{k: c[k] for k in COUNTERS}}

    # ----- engine thread ----------------------------------------------------------------------
    def _run(self) -> None:
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
                    self._step()
            except Exception as e:  # a failed forward pass must not kill the server: fail those rows
                self._fail(e)
            self._flush()
        self._fail(RuntimeError("the server is shutting down"), include_waiting=True)
        self._flush()

    def _emit(self, seq: Seq, event: Event) -> None:
        key = id(seq.sink)
        if key not in self._out:
            self._out[key] = (seq.sink, [])
        self._out[key][1].append(event)

    def _flush(self) -> None:
        out, self._out = self._out, {}
        hand_out(out.values())

    def _finish(self, seq: Seq, reason: str, error: str | None = None) -> None:
        seq.done = True
        self.counters["cancelled" if reason == "cancelled" else "finished"] += 1
        self._emit(seq, Event(seq.index, finish=reason, error=error))

    def _fail(self, err: Exception, include_waiting: bool = False) -> None:
        with self._cond:
            victims = self._rows + (list(self._waiting) if include_waiting else [])
            if include_waiting:
                self._waiting.clear()
        self._rows, self._kv = [], BatchKV(self.model, self.context)
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

    @torch.inference_mode()
    def _step(self) -> None:
        rows = self._rows
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
