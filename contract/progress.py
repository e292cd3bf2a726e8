"""Progress of a long step on stderr, without a third-party dependency and without flooding a log.

On a terminal, one line redrawn in place (`\\r`) with count/total, rate and ETA, at most every TTY_SECONDS.
On a pipe, a log file or CI, whole lines only (a carriage return would smear them into one), and few: one
at a tenth of the work at most every PIPE_SECONDS, so a step of any length writes at most eleven lines.
Console results go to stdout; progress goes to stderr, so a redirected table stays clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Progress:
    """Call it with the number of units done so far; `close()` (or leaving its `with`) ends its line.

    `transient`: the caller prints its own line when the step ends (training's epoch summary), so on a
    terminal the bar is erased rather than kept, and a pipe gets no final line."""

    TTY_SECONDS = 0.5
    PIPE_SECONDS = 5.0
    PIPE_STEPS = 10  # a pipe line at most at each tenth of the total

    def __init__(self, label: str, total: int, unit: str = "", transient: bool = False):
        self.label, self.total, self.unit, self.transient = label, total, unit, transient
        self.start = self.shown = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.next_step = 1  # the tenth of the work a pipe line waits for
        self.drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        finished = done >= self.total
        if self.tty:
            if finished or not self.drawn or now - self.shown >= self.TTY_SECONDS:
                self._emit(f"\r{self.text(done, now)}\x1b[K", now)
            return
        step = done * self.PIPE_STEPS // max(self.total, 1)
        due = step >= self.next_step and now - self.shown >= self.PIPE_SECONDS
        if due or (finished and not self.transient):
            self.next_step = step + 1
            self._emit(self.text(done, now) + "\n", now)

    def text(self, done: int, now: float) -> str:
        elapsed = now - self.start
        unit = f" {self.unit}" if self.unit else ""
        text = f"{self.label}: {done}/{self.total}{unit}, {elapsed:.1f} s"
        if 0 < done < self.total and elapsed > 0:
            rate = done / elapsed
            text += f", {rate:.3g}{unit}/s, ETA {(self.total - done) / rate:.0f} s"
        return text

    def _emit(self, text: str, now: float) -> None:
        self.shown, self.drawn = now, True
        print(text, end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and self.drawn:  # erase a transient bar, keep the final state of another
            print("\r\x1b[K" if self.transient else "", end="" if self.transient else "\n", file=sys.stderr, flush=True)
            self.drawn = False


def tracked(items: Iterable[T], label: str, total: int, unit: str = "") -> Iterator[T]:
    """`items`, reporting after each one how many are done (a Progress over a loop)."""
    with Progress(label, total, unit) as progress:
        progress(0)  # a terminal shows the step from its start
        for done, item in enumerate(items, 1):
            yield item
            progress(done)
