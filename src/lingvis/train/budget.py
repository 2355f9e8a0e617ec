"""A wall-clock budget turned into steps: the step horizon the learning-rate schedule ends at, and an
evaluation plan that keeps evaluation and checkpoints a small share of the budget.

Without `max_minutes` the horizon is `max_steps` and evaluation follows `eval_every` / `eval_batches`.
With it, the first steps are timed (the first step of a process is left out: it allocates), the horizon
is fixed as the steps that fit in the budget (never more than `max_steps`), and, unless the user set them,
`eval_batches` is sized from the measured step time and `eval_every` spreads `PERIODIC_EVALS` evaluations
over the horizon. At each periodic evaluation the plan is checked against the clock: when the projected
end misses the budget by more than `REPLAN_TOLERANCE` of what is left (the machine got slower or faster),
the horizon moves, and evaluations are thinned when they cost more than `EVAL_SHARE` of the budget.
The plan is part of the checkpoint state, so a resumed run follows the same plan. Decisions use only
what a resumed run also knows: step times of this process, and evaluation + checkpoint costs of the
cycles completed before the checkpoint it resumed from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .config import TrainConfig

CALIBRATION_STEPS = 8       # timed steps that fix the horizon...
CALIBRATION_SHARE = 0.05    # ...or fewer (at least 2), once they took this share of the budget
EVAL_SHARE = 0.03           # target share of a budget for periodic evaluation + checkpoints (< 5%)
PERIODIC_EVALS = 8          # evaluations + checkpoints spread over a budgeted run, besides the final one
MAX_AUTO_EVAL_BATCHES = 50
MIN_AUTO_EVAL_BATCHES = 2
REPLAN_TOLERANCE = 0.05
DEFAULT_EVAL_EVERY, DEFAULT_EVAL_BATCHES = 200, 20
CHECKPOINT_BYTES_PER_S = 200e6  # a guess for the first checkpoints' cost (weights + 2 AdamW moments)


@dataclass
class RunBudget:
    """Steps, seconds and the evaluation plan of one run (all ranks hold the same values)."""

    max_steps: int
    seconds: float | None = None         # the wall-clock budget; None: steps only
    eval_every: int | None = None        # None until planned (auto with a budget)
    eval_batches: int | None = None
    auto_every: bool = False
    auto_batches: bool = False
    next_eval: int | None = None         # the step of the next periodic evaluation
    horizon: int | None = None           # None while calibrating
    fixed_at: int | None = None          # the step the horizon was fixed at
    step_seconds: float | None = None    # the calibrated step time
    used_before: float = 0.0             # seconds of the budget spent by earlier processes of this run
    cycle_costs: list[float] = field(default_factory=list)  # seconds of each periodic eval + checkpoint
    evals_done: int = 0                  # periodic evaluations so far (over all processes of the run)
    checkpoint_guess: float = 0.1        # seconds a checkpoint is assumed to take before one was timed
    micro_per_step: int = 1              # forward passes per optimizer step (gradient accumulation)
    _timed: list[float] = field(default_factory=list)  # step times of this process since the last plan

    @classmethod
    def from_config(cls, cfg: TrainConfig, checkpoint_bytes: int = 0) -> RunBudget:
        seconds = None if cfg.max_minutes is None else cfg.max_minutes * 60
        b = cls(cfg.max_steps, seconds, cfg.eval_every, cfg.eval_batches,
                auto_every=seconds is not None and cfg.eval_every is None,
                auto_batches=seconds is not None and cfg.eval_batches is None,
                checkpoint_guess=0.05 + checkpoint_bytes / CHECKPOINT_BYTES_PER_S, micro_per_step=cfg.grad_accum)
        if seconds is None:
            b.horizon = cfg.max_steps
            b.eval_every = b.eval_every or DEFAULT_EVAL_EVERY
            b.eval_batches = b.eval_batches or DEFAULT_EVAL_BATCHES
        if b.eval_every is not None:
            b.next_eval = b.eval_every
        return b

    # ---- checkpoint state ------------------------------------------------------------------------------
    def state(self, used: float) -> dict:
        return {"horizon": self.horizon, "horizon_fixed_at": self.fixed_at, "step_seconds": self.step_seconds,
                "eval_every": self.eval_every, "next_eval": self.next_eval, "eval_batches": self.eval_batches,
                "budget_seconds": self.seconds,
                "budget_used_s": used, "cycle_costs": list(self.cycle_costs), "periodic_evals": self.evals_done}

    def restore(self, state: dict) -> None:
        """Continue the plan recorded in a checkpoint (a run without a budget keeps its own settings)."""
        step = int(state["step"])
        if self.eval_every is not None:
            self.next_eval = (step // self.eval_every + 1) * self.eval_every
        if self.seconds is None:
            return
        self.used_before = float(state.get("budget_used_s") or 0.0)
        self.cycle_costs = list(state.get("cycle_costs") or [])
        self.evals_done = int(state.get("periodic_evals") or 0)
        if state.get("horizon") is not None:
            self.horizon = min(int(state["horizon"]), self.max_steps)
            self.fixed_at, self.step_seconds = state.get("horizon_fixed_at"), state.get("step_seconds")
        if self.auto_every and state.get("eval_every"):
            self.eval_every, self.next_eval = int(state["eval_every"]), int(state["next_eval"])
        if self.auto_batches and state.get("eval_batches"):
            self.eval_batches = int(state["eval_batches"])

    # ---- the plan ----------------------------------------------------------------------------------------
    @property
    def end(self) -> int:
        """The last step: the horizon once fixed, else `max_steps`."""
        return self.horizon if self.horizon is not None else self.max_steps

    @property
    def lr_horizon(self) -> int | None:
        """What the schedule decays towards: None (= max_steps, as configured) without a budget."""
        return None if self.seconds is None else self.horizon

    @property
    def batches_per_eval(self) -> int:
        """Validation batches of an evaluation; a run that ends before its plan is fixed (fewer steps than the
        calibration) evaluates as a run without a budget does."""
        return self.eval_batches if self.eval_batches is not None else DEFAULT_EVAL_BATCHES

    @property
    def calibrating(self) -> bool:
        return self.horizon is None

    def record_step(self, seconds: float) -> None:
        """Time of one optimizer step of this process (the caller leaves out the process's first step)."""
        self._timed.append(seconds)

    def calibration_done(self) -> bool:
        n, total = len(self._timed), sum(self._timed)
        return n >= CALIBRATION_STEPS or (n >= 2 and total >= CALIBRATION_SHARE * self.seconds)

    def _eval_batch_seconds(self, step_s: float) -> float:
        return step_s / self.micro_per_step / 3  # a forward pass: about a third of forward + backward

    def fix(self, step: int, used: float, first_step_s: float) -> None:
        """Fix the horizon at `step` from the timed steps (or the first step's time if none were timed)."""
        step_s = sum(self._timed) / len(self._timed) if self._timed else first_step_s
        self.step_seconds, self.fixed_at = step_s, step
        if self.auto_batches and self.eval_batches is None:
            per_eval = EVAL_SHARE * self.seconds / PERIODIC_EVALS / 2  # half for the forward passes
            fit = int(per_eval / max(self._eval_batch_seconds(step_s), 1e-9))
            self.eval_batches = max(MIN_AUTO_EVAL_BATCHES, min(MAX_AUTO_EVAL_BATCHES, fit))
        cycle = self._cycle_guess(step_s)
        if self.auto_every:
            evals = PERIODIC_EVALS
        else:  # the evaluations that fall before the horizon the budget allows (not those up to max_steps)
            per_step = step_s + (cycle / self.eval_every if self.eval_every else 0.0)
            reach = min(self.max_steps, step + int(max(0.0, self.seconds - used) / max(per_step, 1e-9)))
            evals = self._evals_left(step, reach)
        left = max(0.0, self.seconds - used - evals * cycle)
        self.horizon = max(step + 1, min(self.max_steps, step + int(left / max(step_s, 1e-9))))
        if self.auto_every:
            self.eval_every = max(1, round(self.horizon / (PERIODIC_EVALS + 1)))
            self.next_eval = max(step + 1, self.eval_every)
        self._timed.clear()

    def _cycle_guess(self, step_s: float) -> float:
        return self.eval_batches * self._eval_batch_seconds(step_s) + self.checkpoint_guess

    def _evals_left(self, step: int, end: int) -> int:
        """Periodic evaluations after `step` and before `end` (the final one is not periodic)."""
        if not self.eval_every:
            return 0
        first = self.next_eval if self.next_eval is not None and self.next_eval > step else step + self.eval_every
        return 0 if first >= end else (end - 1 - first) // self.eval_every + 1

    def should_eval(self, step: int) -> bool:
        """A periodic evaluation + checkpoint after `step` (the last step always gets the final one)."""
        return self.next_eval is not None and step >= self.next_eval and step < self.end

    def evaluated(self, step: int) -> None:
        """A periodic evaluation ran after `step`: schedule the next one."""
        every = self.eval_every
        self.next_eval = step + every if self.auto_every else (step // every + 1) * every

    def replan(self, step: int, used: float) -> None:
        """At a periodic evaluation (before its checkpoint): move the horizon when the clock disagrees with
        the plan, and thin evaluations that cost too much. Costs come from the cycles before the previous
        one, which a run resumed from the previous checkpoint also knows."""
        self.evals_done += 1
        if self.seconds is None or self.horizon is None or not self._timed:
            self._timed.clear()
            return
        step_s = sum(self._timed) / len(self._timed)
        self._timed.clear()
        known = self.cycle_costs[:max(0, self.evals_done - 2)]
        cycle = sum(known) / len(known) if known else self._cycle_guess(self.step_seconds or step_s)
        evals = self._evals_left(step, self.horizon)
        if self.auto_every:
            spent = sum(known) + (self.evals_done - 1 - len(known)) * cycle  # the cycles before this one
            allowed = max(0, int((EVAL_SHARE * self.seconds - spent - cycle) / max(cycle, 1e-9)))
            evals = min(evals, allowed)
        left = self.seconds - used - evals * cycle
        fit = step + max(1, int(left / max(step_s, 1e-9)))
        if abs(fit - self.horizon) > REPLAN_TOLERANCE * max(1, self.horizon - step):
            self.horizon = max(step + 1, min(self.max_steps, fit))
        if self.auto_every:
            self.eval_every = math.ceil((self.horizon - step) / (evals + 1)) if evals else self.horizon + 1

    def cycle_cost(self, seconds: float) -> None:
        """Seconds the periodic evaluation + checkpoint just finished took."""
        self.cycle_costs.append(seconds)
