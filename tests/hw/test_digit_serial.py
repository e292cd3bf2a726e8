"""Digit-serial engines (EngineConfig.digit_bits = D < B) in the Amaranth simulator, against golden.nested
and the cycle-exact model: every weight precision k in 1..B, both schemes, back to back on one engine,
random stalls on every stream, a tile that waits for its weights, and the generator's --digit-bits.

Each run is a `verif.scenarios.Scenario` driven by `verif.amaranth_streams.simulate` and scored by
`verif.scoreboard` (every result beat; with ideal streams, each command's acceptance and last result beat
against the model's cycle formula, whose steady term is M*T*ceil(k/D)).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract.config import ConfigError, EngineConfig
from contract.streams import INPUTS
from verif.amaranth_streams import simulate
from verif.configs import config_id
from verif.scenarios import Scenario, random_command
from verif.scoreboard import Scoreboard
from verif.stalls import Random

REPO = Path(__file__).resolve().parents[2]


def config(array: str, base_bits: int, digit_bits: int, pipelined: bool = False) -> EngineConfig:
    rows, cols = map(int, array.split("x"))
    return EngineConfig(
        rows=rows,
        cols=cols,
        base_bits=base_bits,
        act_bits=base_bits,
        acc_bits=16 if base_bits == 4 else 32,
        max_m=16,
        max_k=64,
        max_n=64,
        digit_bits=digit_bits,
        pipelined=pipelined,
    )


#: D = 1, 2, 4, and pipelined at D = 2 and 4 (D = 1 pipelined is in verif.configs.AMARANTH).
CONFIGS = {
    f"{array}b{bits}d{digit}{'p' if pipelined else ''}": config(array, bits, digit, pipelined)
    for array, bits, digit, pipelined in [
        ("2x2", 4, 1, False),
        ("2x2", 4, 2, False),
        ("3x5", 8, 1, False),
        ("3x5", 8, 2, False),
        ("3x5", 8, 4, False),
        ("2x2", 4, 2, True),
        ("3x5", 8, 4, True),
    ]
}


def check(cfg, commands, pauses=None, seed=0):
    """Run `commands` back to back (streams paced by `pauses`, default ideal) and score them; returns what
    the bench observed."""
    scenario = Scenario("digit_serial", seed, commands, pauses or {})
    observed = simulate(cfg, scenario)
    Scoreboard(
        cfg, scenario, f"the Amaranth simulator, {config_id(cfg)}", "pytest tests/hw/test_digit_serial.py"
    ).check(observed)
    return observed


@pytest.mark.parametrize("scheme", ["offset", "twos"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_weight_precision_switching_each_command(name, scheme):
    """One command per k (with j varying too), back to back: a switch of k costs no cycle beyond the
    ceil(k/D) slots per row the model charges, and needs no reload."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(cfg.rows * 10 + cfg.digit_width)
    B = cfg.base_bits
    shapes = [(3, cfg.rows + 1, cfg.cols + 1), (cfg.rows + 2, 2 * cfg.rows, cfg.cols)]
    commands = [
        random_command(cfg, rng, *shapes[k % 2], k, (k * 3) % cfg.act_bits + 1, scheme) for k in [*range(1, B + 1), 1]
    ]
    check(cfg, commands)


@pytest.mark.parametrize("seed", range(21, 24))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_random_stalls_on_every_stream(name, seed):
    """Every stream, the result FIFO included, is at some point the one holding the pipeline back,
    including while an activation beat is held for its row's digit slots."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(seed)
    rates = rng.choice([0.0, 0.3, 0.6, 0.9], len(INPUTS) + 1).tolist()
    pauses = {
        name: Random(rate, seed * 10 + i) for i, (name, rate) in enumerate(zip((*INPUTS, "result"), rates, strict=True))
    }
    shapes = rng.integers(1, (2 * cfg.rows + 3, 3 * cfg.rows + 1, 2 * cfg.cols + 2), size=(3, 3)).tolist()
    check(cfg, [random_command(cfg, rng, *shape) for shape in shapes], pauses, seed)


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("digit_bits", [1, 2])
def test_tiles_that_wait_for_weights_and_a_row_that_returns_next_slot(digit_bits, pipelined):
    """M * ceil(k/D) < R: a tile lasts R slots while the next tile's weights load. R = 1, M = 1, k <= D:
    the accumulator reads back, one slot later, the row it is writing (transparent read port; pipelined,
    the forwarded sum)."""
    sizes = dict(base_bits=4, acc_bits=16, max_m=8, max_n=16, digit_bits=digit_bits, pipelined=pipelined)
    tall = EngineConfig(rows=4, cols=2, act_bits=4, max_k=32, **sizes)
    thin = EngineConfig(rows=1, cols=2, act_bits=3, max_k=16, **sizes)
    rng = np.random.default_rng(5)
    check(
        tall, [random_command(tall, rng, 1, 9, 3, k, None, scheme) for k in (1, 4, 3) for scheme in ("offset", "twos")]
    )
    check(
        thin,
        [
            random_command(thin, rng, 1, 5, 3, k, None, scheme, "raw")
            for k in (1, 2, 4)
            for scheme in ("offset", "twos")
        ],
    )


def test_cycles_fall_with_the_weight_precision():
    """On one D = 1 engine the same GEMM takes about k times the k = 1 cycles (measured on the RTL)."""
    cfg = CONFIGS["2x2b4d1"]
    rng = np.random.default_rng(8)
    spans = []
    for k in (1, 4):
        commands = [random_command(cfg, rng, 8, 4, 4, k)]
        spans.append(check(cfg, commands).spans(cfg, commands)[0][1] + 1)
    # 4 tiles of M = 8 rows: 32 slots per digit, plus 1 + R + (R + C + 1) + 7 + 1 = 16 cycles.
    assert spans == [32 * 1 + 16, 32 * 4 + 16], spans


@pytest.mark.parametrize(
    "base_bits,digit_bits", [(8, 3), (8, 16), (8, 0), (6, 4), (4, True)], ids=["3", "16", "0", "4ofB6", "bool"]
)
def test_bad_digit_bits_is_a_config_error(base_bits, digit_bits):
    with pytest.raises(ConfigError, match="--digit-bits must be one of 1, 2, 4 or B"):
        EngineConfig(base_bits=base_bits, digit_bits=digit_bits)


def test_digit_serial_needs_the_switchable_engine():
    with pytest.raises(ConfigError, match="needs the switchable engine"):
        EngineConfig(digit_bits=1, switchable=False)


def test_digit_bits_equal_to_b_is_the_bit_parallel_engine():
    assert EngineConfig(base_bits=8, digit_bits=8) == EngineConfig(base_bits=8)
    assert "digit_bits" not in EngineConfig().as_dict()


def run_generate(*args):
    return subprocess.run(
        [sys.executable, "-m", "hw.generate", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_generate_with_bad_digit_bits_writes_nothing(tmp_path):
    out = tmp_path / "gen"
    result = run_generate("--bits", "8", "--digit-bits", "3", "-o", str(out))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --digit-bits must be one of 1, 2, 4 or B = 8 and divide B, got 3")
    assert list(tmp_path.iterdir()) == []


def test_generate_records_digit_bits_in_the_manifest(tmp_path):
    out = tmp_path / "gen"
    result = run_generate(
        "--bits", "4", "--array", "2x2", "--max-m", "8", "--max-k", "32", "--digit-bits", "2", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["parameters"]["digit_bits"] == 2
