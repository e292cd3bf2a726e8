"""The host side of the engine's streams: a Command as the beats of each port, in the documented order.

This is the single source of truth for stream order (docs/architecture.md, "Streams"); the Amaranth
tests and the cocotb tests both drive the RTL with these beats and compare against `result`.

    cmd     one beat per command
    param   for each N-tile: one beat with the C columns' bias, mult, shift
    weight  for each N-tile, for each K-tile: R beats, beat r = W[kt*R + r, nt*C : nt*C + C]
    act     for each N-tile, for each K-tile: M beats, beat m = X[m, kt*R : kt*R + R]
    result  for each N-tile: M beats, beat m = Y[m, nt*C : nt*C + C]

Lanes beyond K or N in the last tile are don't-care on input (filled from `rng` if given, else 0) and 0 on
output. `last` is set on the final beat of the command on each stream. A digit-serial engine takes the same
beats: it only holds each activation beat (valid, not yet ready) for ceil(k/D) slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.config import EngineConfig
from hw.interface import Mode, Scheme, act_layout, command_layout, param_layout, result_layout, weight_layout
from sim.command import Command
from sim.model import EngineModel, ceil_div


@dataclass(frozen=True)
class HostBeats:
    """Beats per stream, each a dict in the shape of that stream's payload layout."""

    cmd: list[dict]
    param: list[dict]
    weight: list[dict]
    act: list[dict]
    result: list[dict]

    def extend(self, other: HostBeats) -> HostBeats:
        """The beats of two back-to-back commands."""
        return HostBeats(*(getattr(self, f) + getattr(other, f) for f in STREAMS))


STREAMS = ("cmd", "param", "weight", "act", "result")
LAYOUTS = {
    "cmd": command_layout,
    "param": param_layout,
    "weight": weight_layout,
    "act": act_layout,
    "result": result_layout,
}


def _padded(matrix: np.ndarray, rows: int, cols: int, rng: np.random.Generator | None, high: int) -> np.ndarray:
    """`matrix` in the top-left corner of a rows x cols array whose other entries are don't-care."""
    out = np.zeros((rows, cols), dtype=np.int64) if rng is None else rng.integers(0, high, (rows, cols))
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def _with_last(beats: list[dict]) -> list[dict]:
    for index, beat in enumerate(beats):
        beat["last"] = int(index == len(beats) - 1)
    return beats


def pack_command(cfg: EngineConfig, command: Command, outputs, rng: np.random.Generator | None = None) -> HostBeats:
    """The input beats of `command` and the result beats the engine must produce for `outputs` [M x N]."""
    command.check(cfg)
    R, C = cfg.rows, cfg.cols
    kt_count, nt_count = ceil_div(command.k_dim, R), ceil_div(command.n, C)
    X = _padded(np.asarray(command.X), command.m, kt_count * R, rng, 1 << cfg.act_bits)
    W = _padded(np.asarray(command.W), kt_count * R, nt_count * C, rng, 1 << cfg.base_bits)
    params = {
        name: _padded(np.asarray(getattr(command, name)).reshape(1, -1), 1, nt_count * C, None, 0)[0]
        for name in ("bias", "mult", "shift")
    }
    Y = _padded(np.asarray(outputs), command.m, nt_count * C, None, 0)

    cmd = [
        {
            "m": command.m,
            "k_dim": command.k_dim,
            "n": command.n,
            "wbits": command.wbits,
            "abits": command.abits,
            "scheme": Scheme[command.scheme.upper()].value,
            "mode": Mode[command.mode.upper()].value,
        }
    ]
    param, weight, act, result = [], [], [], []
    for nt in range(nt_count):
        columns = slice(nt * C, nt * C + C)
        param.append({name: [int(v) for v in values[columns]] for name, values in params.items()})
        for kt in range(kt_count):
            inputs = slice(kt * R, kt * R + R)
            weight += [{"codes": [int(v) for v in W[kt * R + r, columns]]} for r in range(R)]
            act += [{"codes": [int(v) for v in X[row, inputs]]} for row in range(command.m)]
        result += [{"values": [int(v) for v in Y[row, columns]]} for row in range(command.m)]
    return HostBeats(cmd, _with_last(param), _with_last(weight), _with_last(act), _with_last(result))


def pack_sequence(cfg: EngineConfig, commands: list[Command], rng: np.random.Generator | None = None) -> HostBeats:
    """The beats of back-to-back `commands`, with the result beats the model predicts."""
    beats = HostBeats([], [], [], [], [])
    for command, expected in zip(commands, EngineModel(cfg).run(commands), strict=True):
        beats = beats.extend(pack_command(cfg, command, expected.outputs, rng))
    return beats


def last_result_beats(cfg: EngineConfig, commands: list[Command]) -> list[int]:
    """Index, in the result stream, of each command's last beat (M beats per N-tile)."""
    return (np.cumsum([c.m * ceil_div(c.n, cfg.cols) for c in commands]) - 1).tolist()


def to_bits(cfg: EngineConfig, stream: str, beat: dict) -> int:
    """A beat as the integer on the stream's payload port (for cocotb or an Amaranth testbench)."""
    return LAYOUTS[stream](cfg).const(beat).as_value().value


def result_beat(cfg: EngineConfig, payload) -> dict:
    """A result payload (the integer on the port, or the value an Amaranth testbench reads) as a beat dict."""
    if isinstance(payload, int):
        payload = result_layout(cfg).from_bits(payload)
    return {"values": [int(payload.values[c]) for c in range(cfg.cols)], "last": int(payload.last)}
