"""The verification library itself: configuration ids, pause generators, seeds, coverage bins, and a scoreboard
that fails on a broken engine (a library that cannot fail proves nothing)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Module

import hw.datapath
from contract.config import EngineConfig
from hw.requant import Requantizer
from sim.command import Command
from verif import coverage
from verif.amaranth_streams import simulate
from verif.configs import AMARANTH, CONFIGS, RTL, config_id
from verif.scenarios import DEFAULT_SEED, NAMES, SEED_ENV, base_seed, build, run_seed
from verif.scoreboard import Scoreboard
from verif.stalls import Bursts, Never, Random

SMALL = AMARANTH["2x2-b4a4acc16-m8k64n64"]
#: A valid other value for each EngineConfig field (on a 2x2, B = A = 4, ACC = 16 engine).
OTHER_VALUE = dict(
    rows=3,
    cols=3,
    base_bits=3,
    act_bits=3,
    acc_bits=18,
    max_m=4,
    max_k=32,
    max_n=32,
    switchable=False,
    digit_bits=2,
    pipelined=True,
)


def test_config_ids_change_with_every_parameter():
    for field in dataclasses.fields(EngineConfig):
        assert field.name in OTHER_VALUE, f"give EngineConfig.{field.name} an other value to test its id"
        other = dataclasses.replace(SMALL, **{field.name: OTHER_VALUE[field.name]})
        assert config_id(other) != config_id(SMALL), field.name


def test_registry_ids_are_the_configs_own_and_the_old_collision_is_gone():
    assert all(config_id(cfg) == cid for cid, cfg in CONFIGS.items())
    four_by_four = [cid for cid in CONFIGS if cid.startswith("4x4-")]
    assert sorted(four_by_four) == ["4x4-b8a6acc24-m16k64n64", "4x4-b8a8acc32-m16k128n128"]
    assert {(c.rows, c.cols) for c in RTL.values()} == {(2, 2), (4, 4), (3, 5), (16, 16)}


def test_pause_generators():
    assert not any(Never().pause() for _ in range(100)) and Never().ideal
    first, again = Random(0.4, seed=7), Random(0.4, seed=7)
    pattern = [first.pause() for _ in range(2000)]
    assert pattern == [again.pause() for _ in range(2000)]
    assert 700 < sum(pattern) < 900 and not first.ideal and Random(0, seed=1).ideal
    bursts = Bursts(run=2, hold=3, start=1)
    assert [bursts.pause() for _ in range(11)] == [
        False,
        False,
        False,
        True,
        True,
        True,
        False,
        False,
        True,
        True,
        True,
    ]
    for bad in (lambda: Random(1.0, 0), lambda: Bursts(run=0, hold=1)):
        with pytest.raises(ValueError):
            bad()


def test_seed_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(SEED_ENV, raising=False)
    assert base_seed() == DEFAULT_SEED
    monkeypatch.setenv(SEED_ENV, "1234")
    assert base_seed() == 1234
    cid = config_id(SMALL)
    assert run_seed(1234, cid, "stalls") != run_seed(DEFAULT_SEED, cid, "stalls")
    assert run_seed(1234, cid, "stalls") != run_seed(1234, cid, "shapes")
    one, same, other = build("stalls", SMALL, 5), build("stalls", SMALL, 5), build("stalls", SMALL, 6)
    assert [c.X.tolist() for c in one.commands] == [c.X.tolist() for c in same.commands]
    assert [c.X.tolist() for c in one.commands] != [c.X.tolist() for c in other.commands]


def test_every_scenario_builds_valid_commands_for_every_switchable_config():
    for cfg in (cfg for cfg in CONFIGS.values() if cfg.switchable):
        for name in NAMES:
            for command in build(name, cfg, 3).commands:
                command.check(cfg)


def command(x, w, bias, mult, shift, mode="relu", scheme="offset", k=4, j=4) -> Command:
    return Command(np.array(x), np.array(w), k, j, scheme, mode, np.array(bias), np.array(mult), np.array(shift))


def test_stimulus_bins_on_hand_worked_commands():
    """2x2, ACC = 16. Offset code 15 at k = 4 is +15, so x = 1 gives acc = 15: plus bias 32767 it wraps (to a
    negative t, clamped to 0 in relu)."""
    hits = coverage.Coverage()
    hits.sample_command(SMALL, command([[1]], [[15]], [32767], [1], [0]))
    assert hits.hits[coverage.ACC_WRAP] == 1 and hits.hits[coverage.CLAMP_LOW] == 1
    assert hits.hits[coverage.M_ONE] == hits.hits[coverage.K_PARTIAL] == hits.hits[coverage.N_PARTIAL] == 1
    assert hits.hits[coverage.precision_bin(4, 4, "offset", "relu")] == 1
    hits = coverage.Coverage()
    hits.sample_command(SMALL, command([[1, 1]] * 2, [[15, 15]] * 2, [0, 1], [1, 1], [0, 0]))
    # acc = 30 per column: 30 and 31 are above the top code 15; no wrap, M = 2, K = N = R = C
    assert hits.hits[coverage.CLAMP_HIGH] == 4 and hits.hits[coverage.CLAMP_LOW] == hits.hits[coverage.ACC_WRAP] == 0
    assert hits.hits[coverage.M_ONE] == hits.hits[coverage.K_PARTIAL] == hits.hits[coverage.N_PARTIAL] == 0


def test_fifo_bin_needs_a_long_enough_stall_with_two_beats_to_come():
    cfg = AMARANTH["1x1-b2a1acc10-m8k16n16"]
    commands = [command([[1], [1]], [[3]], [0], [1], [0], k=2, j=1)]  # M = 2: two result beats
    need = coverage.fifo_fill_cycles(cfg, commands)

    def hits(trace):
        sampled = coverage.Coverage()
        sampled.sample_result_stream(cfg, commands, trace)
        return sampled.hits[coverage.FIFO_FULL]

    assert hits([(1, 0)] * need + [(1, 1)] * 2) == 1
    assert hits([(1, 0)] * (need - 1) + [(1, 1)] * 2) == 0  # too short
    assert hits([(1, 1)] + [(1, 0)] * need + [(1, 1)]) == 0  # only the last beat was left


def test_report_marks_missing_bins():
    hits = coverage.Coverage({coverage.M_ONE: 3})
    report = hits.report("title", [coverage.M_ONE, coverage.FIFO_FULL, *coverage.precision_bins(SMALL)])
    assert "ok      M = 1: 3" in report and "MISSING output FIFO full: 0" in report
    assert "0 of 96 bins hit" in report  # 4 k x 4 j x 2 schemes x 3 modes
    assert hits.missing([coverage.M_ONE, coverage.FIFO_FULL]) == [coverage.FIFO_FULL]


def fifo_level_probe(levels: list[int]):
    """A probe that records the output FIFO's level in every cycle (sampled like the handshake recorder)."""

    def probe(design):
        fifo = next(sub.origins[0] for sub, name, *_ in design.subfragments if name == "out_fifo")

        async def testbench(ctx):
            async for _, _, level in ctx.tick().sample(fifo.level):
                levels.append(level)

        return testbench

    return probe


def test_fifo_bin_agrees_with_the_fifo_level_inside_the_engine():
    """The handshake rule of the FIFO bin against the engine's own FIFO level, on the backpressure scenario."""
    cfg = AMARANTH["3x1-b4a3acc16-m8k32n16"]
    scenario = build("backpressure", cfg, 11)
    levels = []
    observed = simulate(cfg, scenario, probes=(fifo_level_probe(levels),))
    claimed = coverage.fifo_full_cycles(cfg, scenario.commands, observed.result_trace)
    assert claimed and all(levels[cycle] == 2 for cycle in claimed), (claimed, levels)


class OffByOneRequantizer(Requantizer):
    """The real requantizer with 1 added to column 0 of every result: the bug the scoreboard must catch."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = Requantizer(self._cfg)
        for name in ("sums", "token", "params", "load_params"):
            m.d.comb += getattr(inner, name).eq(getattr(self, name))
        m.d.comb += [
            self.result.eq(inner.result),
            self.result.values[0].eq(inner.result.values[0] + 1),
            self.result_valid.eq(inner.result_valid),
        ]
        return m


def test_scoreboard_catches_a_requantizer_off_by_one(monkeypatch):
    monkeypatch.setattr(hw.datapath, "Requantizer", OffByOneRequantizer)
    seed = run_seed(base_seed(), config_id(SMALL), "extremes")
    scenario = build("extremes", SMALL, seed)
    scoreboard = Scoreboard(SMALL, scenario, "a broken engine", "pytest tests/verif/test_verif_library.py")
    observed = simulate(SMALL, scenario)
    with pytest.raises(AssertionError, match=r"result beat 0 of \d+: engine") as failure:
        scoreboard.check(observed)
    message = str(failure.value)
    assert f"seed {seed}" in message and f"{SEED_ENV}={base_seed()}" in message and "reproduce with" in message
