"""Progress bars that also work in logs: a tqdm bar on a terminal, plain lines elsewhere.

tqdm draws only on a terminal; when stderr goes to a file or a pipe (nohup, CI, `| tee`), a run would
print nothing for minutes. `bar(...)` returns a tqdm bar on a terminal and otherwise a `LogBar` that
prints one line at most every `every` seconds (and at the end): done/total, rate and time left.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

EVERY_S = 20.0


def _fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class LogBar:
    """The part of tqdm's interface the library uses (`update`, `set_postfix`, `close`, context manager),
    as log lines."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
                 every: float = EVERY_S, file: TextIO | None = None, disable: bool = False) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every, self.file, self.disable = every, file, disable
        self._start = self._last = time.monotonic()
        self._initial = initial
        self._closed = False
        self.postfix = ""

    def line(self) -> str:
        """`desc: n/total unit (pct%), rate unit/s, elapsed, ~left` (what is known)."""
        elapsed = time.monotonic() - self._start
        done = self.n - self._initial
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.n}/{self.total}" if self.total else f"{self.n}", self.unit]
        head = " ".join(parts)
        if self.total:
            head += f" ({100 * self.n / self.total:.0f}%)"
        tail = [f"{rate:.3g} {self.unit}/s", f"elapsed {_fmt_time(elapsed)}"]
        if self.total and rate > 0 and self.n < self.total:
            tail.append(f"~{_fmt_time((self.total - self.n) / rate)} left")
        return f"{self.desc}: {head}, " + ", ".join(tail) + (f", {self.postfix}" if self.postfix else "")

    def _print(self) -> None:
        print(self.line(), file=self.file or sys.stderr, flush=True)
        self._last = time.monotonic()

    def update(self, k: int = 1) -> None:
        self.n += k
        if not self.disable and time.monotonic() - self._last >= self.every:
            self._print()

    def set_postfix(self, **values: Any) -> None:
        """Shown at the end of the next line (e.g. loss=0.41), as tqdm's postfix."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        if not self._closed and not self.disable and self.n > self._initial:
            self._print()
        self._closed = True

    def __enter__(self) -> LogBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def bar(total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0, disable: bool = False,
        every: float = EVERY_S) -> Any:
    """A tqdm bar when stderr is a terminal, else a `LogBar` printing a line at most every `every` s."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable)
    return LogBar(total=total, desc=desc, unit=unit, initial=initial, every=every, disable=disable)
