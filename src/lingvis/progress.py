"""Progress bars that suit where they print: one live bar on a terminal; in a log (CI, `nohup`, a file)
whole lines, at most one per `LINE_FRACTION` of the work or per `LINE_SECONDS`, plus the final one.

`progress(iterable, total=, desc=)` returns a tqdm bar either way (`update`, `set_postfix`, `close`,
iteration, `with`); pass `delay=` seconds to stay silent for work that finishes sooner.
"""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

LINE_FRACTION = 0.1   # a log line after each tenth of the total ...
LINE_SECONDS = 30.0   # ... or after this long without one (work without a total: time only)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LogProgress(tqdm):
    """tqdm for streams that are not terminals: each report is a whole line (no carriage returns)."""

    def __init__(self, *args, **kwargs):
        self._last_n: float | None = None  # progress at the last printed line (None: nothing printed yet)
        self._last_t, self._last_postfix = 0.0, None
        kwargs.setdefault("ascii", True)
        super().__init__(*args, **kwargs)

    def _due(self) -> bool:
        if self._last_n is None:
            return True
        if self.n == self._last_n:
            return False
        if self.total and (self.n >= self.total or self.n - self._last_n >= LINE_FRACTION * self.total):
            return True
        return self._time() - self._last_t >= LINE_SECONDS

    def _emit(self) -> None:
        self.fp.write(self.__str__() + "\n")
        self.fp.flush()
        self._last_n, self._last_t, self._last_postfix = self.n, self._time(), self.postfix

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing the bar: a log has nothing to clear
            return False
        if self._due():
            self._emit()
        return True

    def close(self):
        if self.disable:
            return
        if self._last_n is not None and (self.n, self.postfix) != (self._last_n, self._last_postfix):
            # the final state (a postfix set after the last update included), at the whole-run rate
            self._ema_dt = lambda: None
            self._emit()
        self.leave = False  # tqdm's own close would add a blank line or a carriage return
        super().close()


def progress(iterable=None, total: float | None = None, desc: str | None = None, *, file=None,
             disable: bool = False, **kwargs) -> tqdm:
    """A progress bar on `file` (default stderr): a live tqdm bar on a terminal, `LogProgress` otherwise;
    disabled on torchrun ranks other than 0. Other keywords go to tqdm (`initial`, `unit`, `leave`,
    `delay`, ...)."""
    file = sys.stderr if file is None else file
    disable = disable or int(os.environ.get("RANK", "0") or 0) > 0  # under torchrun rank 0 alone reports
    if _is_terminal(file):
        return tqdm(iterable, total=total, desc=desc, file=file, disable=disable, dynamic_ncols=True, **kwargs)
    return LogProgress(iterable, total=total, desc=desc, file=file, disable=disable, **kwargs)
