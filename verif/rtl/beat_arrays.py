"""The beats of back-to-back commands as arrays per stream and field, for the players' memories.

The order is `sim.streams`' (the documented host order): `sim.streams.pack_command` builds one dict per beat,
which is the reference and what the per-cycle drivers send, but costs some 10 us a beat; a whole test set is
10^6 beats. tests/test_players.py checks that both give the same beats.
"""

from __future__ import annotations

import numpy as np

from contract.config import EngineConfig
from hw.interface import Mode, Scheme
from sim.command import Command
from sim.model import ceil_div

Arrays = dict[str, dict[str, np.ndarray]]  # stream -> field -> [beats] or [beats, lanes]


def _padded(matrix, rows: int, cols: int, rng: np.random.Generator | None, high: int) -> np.ndarray:
    """`matrix` in the top-left corner; the other entries are don't-care (random if `rng`, else 0)."""
    out = np.zeros((rows, cols), dtype=np.int64) if rng is None else rng.integers(0, high, (rows, cols))
    matrix = np.asarray(matrix)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


def _last(beats: int) -> np.ndarray:
    flags = np.zeros(beats, dtype=np.int64)
    flags[-1] = 1
    return flags


def command_arrays(cfg: EngineConfig, command: Command, outputs, rng: np.random.Generator | None = None) -> Arrays:
    """The input beats of `command` and the result beats of `outputs` [M x N]."""
    R, C, M = cfg.rows, cfg.cols, command.m
    KT, NT = ceil_div(command.k_dim, R), ceil_div(command.n, C)
    X = _padded(command.X, M, KT * R, rng, 1 << cfg.act_bits)
    W = _padded(command.W, KT * R, NT * C, rng, 1 << cfg.base_bits)
    Y = _padded(outputs, M, NT * C, None, 0)
    # param: one beat per N-tile; weight: per N-tile, per K-tile, R rows; act: per N-tile, per K-tile, M rows;
    # result: per N-tile, M rows.
    params = {
        name: _padded(np.reshape(getattr(command, name), (1, -1)), 1, NT * C, None, 0)
        for name in ("bias", "mult", "shift")
    }
    return {
        "cmd": {
            "m": np.array([M]),
            "k_dim": np.array([command.k_dim]),
            "n": np.array([command.n]),
            "wbits": np.array([command.wbits]),
            "abits": np.array([command.abits]),
            "scheme": np.array([Scheme[command.scheme.upper()].value]),
            "mode": np.array([Mode[command.mode.upper()].value]),
        },
        "param": {name: values.reshape(NT, C) for name, values in params.items()} | {"last": _last(NT)},
        "weight": {"codes": W.reshape(KT, R, NT, C).transpose(2, 0, 1, 3).reshape(-1, C), "last": _last(NT * KT * R)},
        "act": {
            "codes": np.tile(X.reshape(M, KT, R).transpose(1, 0, 2), (NT, 1, 1)).reshape(-1, R),
            "last": _last(NT * KT * M),
        },
        "result": {"values": Y.reshape(M, NT, C).transpose(1, 0, 2).reshape(-1, C), "last": _last(NT * M)},
    }


def concatenate(parts: list[Arrays]) -> Arrays:
    """The arrays of back-to-back commands."""
    return {
        stream: {name: np.concatenate([part[stream][name] for part in parts]) for name in parts[0][stream]}
        for stream in parts[0]
    }


def beat_counts(cfg: EngineConfig, command: Command) -> dict[str, int]:
    """Beats of `command` on every stream, without building them."""
    KT, NT = ceil_div(command.k_dim, cfg.rows), ceil_div(command.n, cfg.cols)
    return {"cmd": 1, "param": NT, "weight": NT * KT * cfg.rows, "act": NT * KT * command.m, "result": NT * command.m}
