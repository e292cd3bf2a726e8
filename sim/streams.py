"""The host side of the engine's streams: a Command as the beats of each port, in the documented order.

This is the single source of truth for stream order (docs/architecture.md, "Streams"); the Amaranth
tests, the cocotb tests and the stream players all drive the RTL with these beats and compare against
`result`. The streams and their fields are `contract.streams`'.

    cmd     one beat per command
    param   for each N-tile: one beat with the C columns' bias, mult, shift
    weight  for each N-tile, for each K-tile: R beats, beat r = W[kt*R + r, nt*C : nt*C + C]
    act     for each N-tile, for each K-tile: M beats, beat m = X[m, kt*R : kt*R + R]
    result  for each N-tile: M beats, beat m = Y[m, nt*C : nt*C + C]

Lanes beyond K or N in the last tile are don't-care on input (filled from `rng` if given, else 0) and 0 on
output. `last` is set on the final beat of the command on each stream. A digit-serial engine takes the same
beats: it only holds each activation beat (valid, not yet ready) for ceil(k/D) slots.

The packer builds arrays per stream and field (a whole test set is 10^6 beats, which the players take as
`$readmemh` text); `beats` is the per-beat view of the same arrays, one dict per beat, for the per-cycle
drivers.
"""

from __future__ import annotations

import numpy as np

from contract import streams
from contract.config import EngineConfig
from contract.widths import ceil_div
from sim.command import Command
from sim.model import EngineModel

Arrays = dict[str, dict[str, np.ndarray]]  # stream -> field -> [beats] or [beats, lanes]
Beats = dict[str, list[dict]]  # stream -> one dict of its fields per beat


def _padded(matrix, rows: int, cols: int, rng: np.random.Generator | None, high: int) -> np.ndarray:
    """`matrix` in the top-left corner of a rows x cols array whose other entries are don't-care."""
    out = np.zeros((rows, cols), dtype=np.int64) if rng is None else rng.integers(0, high, (rows, cols))
    matrix = np.asarray(matrix)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def _last(beats: int) -> np.ndarray:
    flags = np.zeros(beats, dtype=np.int64)
    flags[-1] = 1
    return flags


def _command_fields(cfg: EngineConfig, command: Command) -> dict[str, np.ndarray]:
    """The `cmd` beat: every field is the command's attribute of that name (scheme and mode by their code)."""
    fields = streams.stream(cfg, "cmd").fields
    values = {field.name: getattr(command, field.name) for field in fields}
    return {
        field.name: np.array([field.codes.index(values[field.name]) if field.codes else values[field.name]])
        for field in fields
    }


def command_arrays(cfg: EngineConfig, command: Command, outputs, rng: np.random.Generator | None = None) -> Arrays:
    """The input beats of `command` and the result beats of `outputs` [M x N]."""
    R, C, M = cfg.rows, cfg.cols, command.m
    KT, NT = ceil_div(command.k_dim, R), ceil_div(command.n, C)
    X = _padded(command.X, M, KT * R, rng, 1 << cfg.act_bits)
    W = _padded(command.W, KT * R, NT * C, rng, 1 << cfg.base_bits)
    Y = _padded(outputs, M, NT * C, None, 0)
    params = {
        name: _padded(np.reshape(getattr(command, name), (1, -1)), 1, NT * C, None, 0)
        for name in ("bias", "mult", "shift")
    }
    counts = beat_counts(cfg, command)
    arrays = {
        "cmd": _command_fields(cfg, command),
        "weight": {"codes": W.reshape(KT, R, NT, C).transpose(2, 0, 1, 3).reshape(-1, C)},
        "act": {"codes": np.tile(X.reshape(M, KT, R).transpose(1, 0, 2), (NT, 1, 1)).reshape(-1, R)},
        "param": {name: values.reshape(NT, C) for name, values in params.items()},
        "result": {"values": Y.reshape(M, NT, C).transpose(1, 0, 2).reshape(-1, C)},
    }
    for port in streams.streams(cfg):
        if any(field.name == "last" for field in port.fields):
            arrays[port.name]["last"] = _last(counts[port.name])
    return arrays


def concatenate(parts: list[Arrays]) -> Arrays:
    """The arrays of back-to-back commands."""
    return {
        stream: {name: np.concatenate([part[stream][name] for part in parts]) for name in parts[0][stream]}
        for stream in parts[0]
    }


def beat_counts(cfg: EngineConfig, command: Command) -> dict[str, int]:
    """Beats of `command` on every stream, without building them."""
    return streams.beat_counts(cfg, command.m, ceil_div(command.k_dim, cfg.rows), ceil_div(command.n, cfg.cols))


def beats(arrays: Arrays) -> Beats:
    """The per-beat view of `arrays`: per stream, one dict per beat (plain ints, lists for array fields)."""
    view = {}
    for stream, fields in arrays.items():
        columns = {name: np.asarray(values).tolist() for name, values in fields.items()}
        count = len(next(iter(columns.values())))
        view[stream] = [{name: column[index] for name, column in columns.items()} for index in range(count)]
    return view


def pack_command(cfg: EngineConfig, command: Command, outputs, rng: np.random.Generator | None = None) -> Beats:
    """The input beats of `command` and the result beats the engine must produce for `outputs` [M x N]."""
    command.check(cfg)
    return beats(command_arrays(cfg, command, outputs, rng))


def pack_sequence(cfg: EngineConfig, commands: list[Command], rng: np.random.Generator | None = None) -> Beats:
    """The beats of back-to-back `commands`, with the result beats the model predicts."""
    parts = []
    for command, expected in zip(commands, EngineModel(cfg).run(commands), strict=True):
        command.check(cfg)
        parts.append(command_arrays(cfg, command, expected.outputs, rng))
    return beats(concatenate(parts)) if parts else {name: [] for name in streams.STREAMS}


def last_result_beats(cfg: EngineConfig, commands: list[Command]) -> list[int]:
    """Index, in the result stream, of each command's last beat (M beats per N-tile)."""
    return (np.cumsum([c.m * ceil_div(c.n, cfg.cols) for c in commands]) - 1).tolist()
