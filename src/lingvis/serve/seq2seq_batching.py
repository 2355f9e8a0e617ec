"""Dynamic batching for encoder-decoder (translation) models: one background thread decodes waiting requests
that share their decoding settings together.

Each batch is encoded once. Greedy and sampled rows are decoded by the library's `generate.stream_ids` over the
model's `decoder_view`, and every token is reported as it comes (streaming); each row ends at its own end token,
its own `max_tokens`, or when it is cancelled (a stop string, a client that left). Beam search runs the
library's `beam.beam_search` (through `Seq2Seq.generate`), which yields the n best hypotheses of a sentence at
the end. Requests that arrive while a batch runs wait for the next one; the events have the shape of the
causal-LM engine's (`sequences.Event`), so `runs.Run` and `textjob.TextJob` serve both.
"""
from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, replace

import torch

from ..generate import SamplingConfig, stream_ids
from ..tasks.seq2seq import pad_right
from .engine_base import EngineBase, Sink, Ticket
from .sequences import Event, Seq


@dataclass(frozen=True)
class BeamSettings:
    num_beams: int
    length_penalty: float = 1.0
    early_stopping: bool | str = False


@dataclass
class TranslationSpec:
    """One output sequence. `source`: encoder ids (target-language tag and end token included). With beam
    search, the specs of one submission that share a `group` are the n best hypotheses of ONE search (they
    must share source and settings); otherwise every spec is a row of its own."""
    source: list[int]
    cfg: SamplingConfig
    beam: BeamSettings | None = None
    group: int = 0


@dataclass(eq=False)
class Unit:
    """What one batch row decodes: a sampled/greedy sequence, or a beam group (its n best hypotheses)."""
    seqs: list[Seq]
    key: tuple
    weight: int  # rows it occupies in a decoder forward pass

    @property
    def spec(self) -> TranslationSpec:
        return self.seqs[0].spec

    @property
    def cancelled(self) -> bool:
        return all(s.cancelled for s in self.seqs)


def unit_key(spec: TranslationSpec, n: int, submission: int) -> tuple:
    """Units with equal keys may share a batch: greedy rows always (each row keeps its own max_tokens);
    sampled rows with the same settings (seeded ones only with their own request, so a seed reproduces);
    beam groups with the same search (width, length, penalty, stopping rule and n)."""
    c = spec.cfg
    if spec.beam is not None:
        return ("beam", spec.beam, c.max_new_tokens, n)
    if c.temperature == 0:
        return ("greedy", c.repetition_penalty)
    return ("sample", c.temperature, c.top_k, c.top_p, c.repetition_penalty,
            None if c.seed is None else (submission, c.seed))


class Seq2SeqEngine(EngineBase):
    """`submit(specs, sink)` queues sequences (all or none); `sink(events)` is called from the engine thread.
    The interface of `batching.Engine`, so `runs.Run` drives both."""

    COUNTERS = ("submitted", "rejected", "batches", "rows", "steps", "tokens", "finished", "cancelled", "errors")
    MEAN_BATCH = ("rows", "batches")
    THREAD_PREFIX = "lingvis-seq2seq"

    def __init__(self, model, max_batch: int = 32, max_queue: int = 64, name: str = "model"):
        super().__init__(model, max_batch, max_queue, name)
        c = model.config
        self.eos, self.pad = c.eos_id, c.pad_id
        self.active = 0
        self._waiting: deque[Unit] = deque()
        self._submissions = itertools.count()

    # ----- public, any thread -----------------------------------------------------------------
    def submit(self, specs: list[TranslationSpec], sink: Sink) -> Ticket:
        """Queue `specs`. Raises ValueError for a bad spec, QueueFull when too many sequences wait."""
        self._check_request_size(len(specs))
        for i, spec in enumerate(specs):
            spec.cfg.validate()
            if not spec.source:
                raise ValueError(f"sequence {i}: the source is empty")
            if len(spec.source) > self.context:
                raise ValueError(f"sequence {i}: {len(spec.source)} source tokens exceed the model's limit "
                                 f"of {self.context}")
            if spec.cfg.max_new_tokens > self.context - 1:
                raise ValueError(f"sequence {i}: at most {self.context - 1} new tokens, got "
                                 f"{spec.cfg.max_new_tokens}")
        seqs = [Seq(spec, i, sink) for i, spec in enumerate(specs)]
        self._enqueue(self._waiting, self._units(seqs, next(self._submissions)), len(seqs))
        return Ticket(self, seqs)

    def cancel(self, seqs: list[Seq]) -> None:
        with self._cond:
            for s in seqs:
                s.cancelled = s.cancelled or not s.done
            for u in [u for u in self._waiting if u.cancelled]:  # never started: leave now
                self._waiting.remove(u)
                for s in u.seqs:
                    s.done = True
                    self.counters["cancelled"] += 1
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        return sum(len(u.seqs) for u in self._waiting)

    def _waiting_count(self) -> int:
        return self.waiting

    def _active_count(self) -> int:
        return self.active

    # ----- grouping ---------------------------------------------------------------------------
    @staticmethod
    def _units(seqs: list[Seq], submission: int) -> list[Unit]:
        units: list[Unit] = []
        groups: dict[int, list[Seq]] = {}
        for s in seqs:
            if s.spec.beam is None:
                units.append(Unit([s], unit_key(s.spec, 1, submission), 1))
            else:
                groups.setdefault(s.spec.group, []).append(s)
        for members in groups.values():
            first = members[0].spec
            if any(m.spec.source != first.source or m.spec.beam != first.beam or m.spec.cfg != first.cfg
                   for m in members):
                raise ValueError("the hypotheses of one beam group must share source and settings")
            units.append(Unit(members, unit_key(first, len(members), submission), first.beam.num_beams))
        return units

    def _take(self) -> list[Unit]:
        """The oldest unit and the waiting units with its key, up to max_batch rows (first come, first served)."""
        with self._cond:
            key = self._waiting[0].key
            batch, rows = [], 0
            for u in list(self._waiting):
                if u.key == key and (not batch or rows + u.weight <= self.max_batch):
                    batch.append(u)
                    rows += u.weight
                    self._waiting.remove(u)
            return batch

    # ----- engine thread ----------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._waiting:
                    self._cond.wait()
                if self._stop:
                    break
            units = self._take()
            seqs = [s for u in units for s in u.seqs]
            self.active = len(seqs)
            try:
                self._run(units)
            except Exception as e:  # a failed batch must not kill the server: fail its sequences
                self.counters["errors"] += sum(not s.done for s in seqs)
                for s in seqs:
                    if not s.done:
                        self._finish(s, "error", f"{type(e).__name__}: {e}")
            self.active = 0
            self._flush()
        with self._cond:
            left, self._waiting = [s for u in self._waiting for s in u.seqs], deque()
        for s in left:
            self._finish(s, "error", "RuntimeError: the server is shutting down")
        self._flush()

    def _token(self, seq: Seq, token: int) -> None:
        seq.tokens.append(token)
        self.counters["tokens"] += 1
        self._emit(seq, Event(seq.index, token=token))

    def _run(self, units: list[Unit]) -> None:
        live = []
        for u in units:
            for s in u.seqs:
                if s.cancelled:
                    self._finish(s, "cancelled")
                elif s.spec.cfg.max_new_tokens == 0:
                    self._finish(s, "length")
            if not all(s.done for s in u.seqs):
                live.append(u)
        if not live:
            return
        self.counters["batches"] += 1
        rows = sum(u.weight for u in live)
        self.counters["rows"] += rows
        self.batch_sizes[rows] += 1
        if live[0].spec.beam is not None:
            self._beam_batch(live)
        else:
            self._stream_batch([u.seqs[0] for u in live])

    @torch.inference_mode()
    def _encode(self, sources: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = pad_right(sources, self.pad).to(self.device)  # (B, S)
        mask = pad_right([[1] * len(s) for s in sources], 0).to(self.device)  # (B, S)
        return src, mask, self.model.encode(src, mask)  # memory (B, S, C)

    def _stream_batch(self, seqs: list[Seq]) -> None:
        """Greedy or sampled rows, token by token; a row leaves at its end token, its own max_tokens, or on
        cancellation (its later ids are ignored; the batch ends when every row has)."""
        _, mask, memory = self._encode([s.spec.source for s in seqs])
        view = self.model.decoder_view(memory, mask)
        cfg = replace(seqs[0].spec.cfg, max_new_tokens=max(s.spec.cfg.max_new_tokens for s in seqs),
                      eos_ids=[self.eos])
        start = self.model.start_ids(len(seqs), self.device)  # (B, 1)

        def finished(_ids: torch.Tensor) -> torch.Tensor:
            return torch.tensor([s.done or s.cancelled for s in seqs])  # (B,)

        for ids in stream_ids(view, start, cfg, finished=finished):  # (B,) per step
            self.counters["steps"] += 1
            for s, token in zip(seqs, ids.tolist()):
                if s.done:
                    continue
                if s.cancelled:
                    self._finish(s, "cancelled")
                elif token == self.eos:
                    self._finish(s, "stop")
                else:
                    self._token(s, token)
                    if len(s.tokens) >= s.spec.cfg.max_new_tokens:
                        self._finish(s, "length")
            self._flush()
        for s in seqs:
            if not s.done:
                self._finish(s, "cancelled" if s.cancelled else "length")

    def _beam_batch(self, units: list[Unit]) -> None:
        """One beam search over the batch's sentences; each unit gets its n best hypotheses, best first."""
        first = units[0].spec
        n, N = len(units[0].seqs), first.cfg.max_new_tokens
        src, mask, _ = self._encode([u.spec.source for u in units])
        b = first.beam
        out = self.model.generate(src, mask, num_beams=b.num_beams, max_new_tokens=N, num_return_sequences=n,
                                  length_penalty=b.length_penalty, early_stopping=b.early_stopping)  # (B*n, 1+L)
        self.counters["steps"] += 1
        forced = self.model.config.forced_eos_id
        for row, s in zip(out[:, 1:].tolist(), (s for u in units for s in u.seqs)):
            if s.cancelled:
                self._finish(s, "cancelled")
                continue
            end = row.index(self.eos) if self.eos in row else len(row)
            for token in row[:end]:
                self._token(s, token)
            # an end token the search forced at the last step marks a cut translation, like no end token
            cut = end == len(row) or (end == N - 1 and forced == self.eos)
            self._finish(s, "length" if cut else "stop")

