"""Pause generators: when a driver idles an input stream or a sink drops `ready` on the result stream.

One object per stream, asked once per cycle (`pause()` → True: do not offer a beat / do not take one), in the
manner of cocotbext-axi's `set_pause_generator`. The same objects drive the Amaranth-simulator testbenches
(`verif.amaranth_streams`) and the cocotb drivers (`verif.rtl.streams`), so a stall pattern is defined once and
means the same on both. Every random pattern is seeded, so a failure replays from the seed it prints.
"""

from __future__ import annotations

import random


class Pauses:
    """Base class: `pause()` is called once per clock cycle in which the driver could act."""

    def pause(self) -> bool:
        raise NotImplementedError

    @property
    def ideal(self) -> bool:
        """True if this generator never pauses: only then do the measured cycles equal the model's."""
        return False


class Never(Pauses):
    """Ideal stream: always valid (inputs) or always ready (result)."""

    def pause(self) -> bool:
        return False

    @property
    def ideal(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "Never()"


class Random(Pauses):
    """Pause on a fraction `p` of cycles, independently, from its own seeded generator."""

    def __init__(self, p: float, seed: int):
        if not 0 <= p < 1:
            raise ValueError(f"pause probability must be in [0, 1), got {p}")
        self.p, self.seed = p, seed
        self._rng = random.Random(seed)

    def pause(self) -> bool:
        return self.p > 0 and self._rng.random() < self.p

    @property
    def ideal(self) -> bool:
        return self.p == 0

    def __repr__(self) -> str:
        return f"Random(p={self.p}, seed={self.seed})"


class Bursts(Pauses):
    """`run` cycles of activity, then `hold` cycles of pause, repeating, starting after `start` active cycles.

    On the result stream a hold longer than the pipeline's fill time is what fills the output FIFO: random
    pauses rarely last that long."""

    def __init__(self, run: int, hold: int, start: int = 0):
        if run < 1 or hold < 0 or start < 0:
            raise ValueError(f"Bursts needs run >= 1, hold >= 0, start >= 0, got {run}, {hold}, {start}")
        self.run, self.hold, self.start = run, hold, start
        self._cycle = 0

    def pause(self) -> bool:
        cycle = self._cycle - self.start
        self._cycle += 1
        return cycle >= 0 and cycle % (self.run + self.hold) >= self.run

    @property
    def ideal(self) -> bool:
        return self.hold == 0

    def __repr__(self) -> str:
        return f"Bursts(run={self.run}, hold={self.hold}, start={self.start})"
