"""The cycle-exact model: its formula on hand-worked cases, its outputs on the contract's worked example,
the stream packer's order, and its speed. (Its agreement with the RTL is checked in test_hw_engine.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contract.config import EngineConfig
from contract.numerics import NumericsError
from sim.command import Command
from sim.model import EngineModel, command_cycles, sequence_cycles
from sim.payload import from_bits, to_bits
from sim.streams import pack_command

CFG44 = EngineConfig(rows=4, cols=4, max_m=64, max_k=64, max_n=64)


def test_cycles_of_a_gemm_with_more_rows_than_the_array():
    # M=8 >= R=4, K=8 -> 2 K-tiles, N=4 -> 1 N-tile: 2 tiles of 8 slots each, back to back.
    # 1 accept + 4 weight rows of tile 0 + 16 tile slots + (4 + 4) to the last complete column sums
    # + 7 (accumulator register, 6 requantizer stages, the last writing the FIFO) + 1 (FIFO to port) = 37
    cycles = command_cycles(CFG44, 8, 8, 4)
    assert (cycles.weight_load, cycles.steady, cycles.weight_wait, cycles.fill_drain) == (4, 16, 0, 8)
    assert cycles.total == 37


def test_cycles_when_weight_loading_bounds_the_tile():
    # M=1 < R=4, K=8, N=8 -> 2 x 2 = 4 tiles; each tile but the last waits 4 slots for the next tile's
    # 4 weight rows, the last needs only its 1 activation slot: 3*4 + 1 = 13 tile slots, of which 4 useful.
    # 1 + 4 + 13 + 8 + 7 + 1 = 34
    cycles = command_cycles(CFG44, 1, 8, 8)
    assert (cycles.steady, cycles.weight_wait) == (4, 9)
    assert cycles.total == 34


def test_cycles_of_the_smallest_command():
    # 1x1 array, 1x1x1 GEMM: accept, 1 weight row, 1 activation slot, 1 + 1 to the complete sum (input
    # register, PE register), 7 accumulator/requantizer/FIFO-write stages, 1 FIFO-to-port = 13
    assert command_cycles(EngineConfig(rows=1, cols=1, max_k=8), 1, 1, 1).total == 13


def test_back_to_back_commands_overlap_the_drain():
    # The second command is accepted in the cycle after the first one's last activation slot (1 accept + 4
    # weight rows + 16 tile slots = 21 cycles after the first's acceptance); its preload and tiles run
    # while the first one's last rows drain, and it ends its own 34 cycles after its acceptance.
    first = command_cycles(CFG44, 8, 8, 4)
    assert first.issue == 1 + 4 + 16
    assert sequence_cycles(CFG44, [(8, 8, 4), (1, 8, 8)]) == 21 + 34
    results = EngineModel(CFG44).run([worked_example("offset", "relu"), worked_example("twos", "raw")])
    # 1 accept + 4 weight rows + 1 activation slot, then the second command's acceptance; each ends
    # 1 + 4 + 1 + (4 + 4) + 7 + 1 = 22 cycles after its own
    assert [result.span for result in results] == [(0, 22 - 1), (6, 6 + 22 - 1)]


@pytest.mark.parametrize("digit_bits,wbits,digits", [(1, 8, 8), (1, 1, 1), (2, 5, 3), (4, 5, 2), (4, 4, 1)])
def test_cycles_of_a_digit_serial_engine(digit_bits, wbits, digits):
    # 4x4, D-bit digits, M=8, K=8, N=4: 2 tiles of 8 rows, each row held for ceil(k/D) = `digits` slots.
    # 1 accept + 4 weight rows + 2 * 8 * digits tile slots + (4 + 4 + 1 shift-and-add) + 7 + 1
    cfg = EngineConfig(rows=4, cols=4, max_m=64, max_k=64, max_n=64, digit_bits=digit_bits)
    cycles = command_cycles(cfg, 8, 8, 4, wbits)
    assert (cycles.steady, cycles.weight_wait, cycles.fill_drain) == (16 * digits, 0, 9)
    assert cycles.total == 1 + 4 + 16 * digits + 9 + 7 + 1


def test_digit_serial_tiles_wait_for_weights_only_when_m_digits_fall_below_r():
    # D=1, k=3, M=1, K=8, N=8 on 4x4: 4 tiles; a row takes 3 slots < R = 4, so each tile but the last
    # lasts 4 slots: 3*4 + 3 = 15 tile slots, of which 12 feed the array. 1 + 4 + 15 + 9 + 7 + 1 = 37
    cfg = EngineConfig(rows=4, cols=4, max_m=64, max_k=64, max_n=64, digit_bits=1)
    cycles = command_cycles(cfg, 1, 8, 8, 3)
    assert (cycles.steady, cycles.weight_wait, cycles.total) == (12, 3, 37)
    # back to back, the second command follows the first's 1 + 4 + 15 cycles before its drain
    assert sequence_cycles(cfg, [(1, 8, 8, 3), (8, 8, 4, 1)]) == (1 + 4 + 15) + (1 + 4 + 16 + 9 + 7 + 1)


def test_steady_state_utilisation_reaches_95_percent():
    """Once M * tiles >= 20 * (2R + C + 9) (and M >= R, so tiles are back to back), >= 95% of cycles feed
    the array."""
    for rows, cols in [(4, 4), (16, 16), (8, 32), (48, 48)]:
        cfg = EngineConfig(rows=rows, cols=cols, max_m=4096, max_k=4096, max_n=4096)
        for m in (rows, 3 * rows, 1000):
            for k_dim in (1, rows * 7 + 3, 4096):
                for n in (1, cols + 1, 4096):
                    cycles = command_cycles(cfg, m, k_dim, n)
                    if cycles.steady >= 20 * (2 * rows + cols + 9):
                        assert cycles.utilisation >= 0.95, (rows, cols, m, k_dim, n, cycles)


def worked_example(scheme: str, mode: str) -> Command:
    """docs/numerics.md, "Worked example": B = A = 8, k = 3, j = 4, K = 2."""
    return Command(
        X=np.array([[200, 17]]),
        W=np.array([[182], [3]]),
        wbits=3,
        abits=4,
        scheme=scheme,
        mode=mode,
        bias=np.array([-5]),
        mult=np.array([3]),
        shift=np.array([2]),
    )


@pytest.mark.parametrize(
    "scheme,mode,expected", [("offset", "relu", 18), ("offset", "raw", 24), ("twos", "relu", 0), ("twos", "raw", -41)]
)
def test_outputs_of_the_contracts_worked_example(scheme, mode, expected):
    (result,) = EngineModel(CFG44).run([worked_example(scheme, mode)])
    assert result.outputs.tolist() == [[expected]]
    assert (result.accept_cycle, result.last_result_cycle) == (0, command_cycles(CFG44, 1, 2, 1).total - 1)


def test_stream_order_of_a_small_command():
    cfg = EngineConfig(rows=2, cols=2, max_m=8, max_k=8, max_n=8)
    X = np.array([[1, 2, 3]])  # M=1, K=3: K-tiles [0,1] and [2, pad]
    W = np.arange(9).reshape(3, 3)  # N=3: N-tiles [0,1] and [2, pad]
    command = Command(
        X=X,
        W=W,
        wbits=8,
        abits=8,
        scheme="twos",
        mode="raw",
        bias=np.array([7, 8, 9]),
        mult=np.ones(3, int),
        shift=np.zeros(3, int),
    )
    beats = pack_command(cfg, command, torch.tensor([[10, 20, 30]]))
    assert beats["cmd"] == [{"m": 1, "k_dim": 3, "n": 3, "wbits": 8, "abits": 8, "scheme": 1, "mode": 1}]
    assert [b["bias"] for b in beats["param"]] == [[7, 8], [9, 0]]
    assert [b["codes"] for b in beats["weight"]] == [[0, 1], [3, 4], [6, 7], [0, 0], [2, 0], [5, 0], [8, 0], [0, 0]]
    assert [b["codes"] for b in beats["act"]] == [[1, 2], [3, 0], [1, 2], [3, 0]]
    assert beats["result"] == [{"values": [10, 20], "last": 0}, {"values": [30, 0], "last": 1}]
    assert [b["last"] for b in beats["weight"]] == [0] * 7 + [1]


def test_result_beats_round_trip_through_the_port_bits():
    cfg = EngineConfig(rows=2, cols=3, acc_bits=20, max_k=8)
    beat = {"values": [-(1 << 19), 255, -1], "last": 1}
    assert from_bits(cfg, "result", to_bits(cfg, "result", beat)) == beat


def test_fixed_precision_engine_refuses_other_precisions():
    """The baseline has no precision logic, so the model must not pretend it can switch."""
    cfg = EngineConfig(rows=2, cols=2, max_m=4, max_k=8, max_n=8, switchable=False)
    operands = dict(
        X=np.zeros((1, 2), int),
        W=np.zeros((2, 1), int),
        mode="raw",
        bias=np.zeros(1, int),
        mult=np.ones(1, int),
        shift=np.zeros(1, int),
    )
    Command(wbits=8, abits=8, scheme="twos", **operands).check(cfg)
    for wbits, abits, scheme in [(4, 8, "twos"), (8, 7, "twos"), (8, 8, "offset")]:
        with pytest.raises(NumericsError, match="fixed-precision engine runs only"):
            Command(wbits=wbits, abits=abits, scheme=scheme, **operands).check(cfg)
