"""The energy model's arithmetic on a case worked out by hand, and how it depends on k."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contract.config import EngineConfig
from sim.dataflow import output_stationary_energy, scalesim_cycles
from sim.energy import gemms_energy
from sim.events import command_events, split_rows
from verif.amaranth_streams import simulate
from verif.configs import AMARANTH
from verif.scenarios import build

# 2x2 array, B = A = 8, ACC = 32, accumulator 4 rows deep.
CFG = EngineConfig(rows=2, cols=2, base_bits=8, act_bits=8, acc_bits=32, max_m=4, max_k=64, max_n=64)


def test_hand_checked_command():
    """One 2x2 by 2x2 GEMM (M = K = N = 2) at k = 4, j = 8, derived by hand:

    tiles: ceil(2/2) * ceil(2/2) = 1, steady slots M*T = 2; cycles (T-1)L + M + 2R + C + 9 = 0+2+4+2+9 = 17.
    multiply: 8 MACs * 0.2 pJ * (8*4)/64                                    =   0.8 pJ
    add: 2 slots * 4 PEs * 0.1 pJ * 18/32 (psum = bits(2*255*255) + 1 = 18) =   0.45 pJ
    registers: 17 cycles * 4 PEs * (8 act + 1 swap + 18 psum + 16 weights) bits * 0.1/32 pJ
             = 17 * 172 * 0.003125                                          =   9.1375 pJ
    accumulator: one K-tile, so no read (no earlier sum) and no write (no later K-tile) =   0 pJ
    requant: 4 outputs * (0.2 * 32*16/64 + 2 * 0.1) = 4 * 1.8               =   7.2 pJ
    buffers: act 2*2*8 = 32, weight 2*2*8 = 32, param 2*(32+16+6) = 108, result 2*2*32 = 128: 300 bits
             at 32 KB: 10/64 * sqrt(4) = 0.3125 pJ/bit                      =  93.75 pJ
    total                                                                   = 111.3375 pJ
    """
    energy = gemms_energy(CFG, [(2, 2, 2)], k=4, j=8)
    assert energy.multiply == pytest.approx(0.8)
    assert energy.add == pytest.approx(0.45)
    assert energy.registers == pytest.approx(9.1375)
    assert energy.accumulator == 0
    assert energy.requant == pytest.approx(7.2)
    assert energy.buffers == pytest.approx(93.75)
    assert energy.total == pytest.approx(111.3375)


def test_only_the_multipliers_get_cheaper_at_low_precision():
    shapes = [(3, 5, 7), (4, 2, 2)]
    full, low = gemms_energy(CFG, shapes, k=8), gemms_energy(CFG, shapes, k=2, j=4)
    macs = 3 * 5 * 7 + 4 * 2 * 2
    assert full.multiply == pytest.approx(macs * 0.2) and low.multiply == pytest.approx(macs * 0.2 * 8 / 64)
    for part in ("add", "registers", "accumulator", "requant", "buffers"):
        assert getattr(full, part) == getattr(low, part)


def test_tall_gemms_run_as_several_commands():
    assert split_rows(CFG, 9, 3, 2) == [(4, 3, 2), (4, 3, 2), (1, 3, 2)]
    assert gemms_energy(CFG, [(9, 3, 2)], 5).total == pytest.approx(
        2 * gemms_energy(CFG, [(4, 3, 2)], 5).total + gemms_energy(CFG, [(1, 3, 2)], 5).total
    )
    # 3 K-tiles over 2 N-tiles: every K-tile but the first reads a row's sums, every one but the last writes
    events = command_events(CFG, 4, 5, 3)
    assert (events.acc_reads, events.acc_writes) == (4 * 2 * 2, 4 * 2 * 2)


def test_precision_outside_the_engine_is_refused():
    with pytest.raises(ValueError, match="outside"):
        gemms_energy(CFG, [(1, 1, 1)], k=9)


def test_gemm_shapes_of_an_export(export_dir):
    from contract.model_files import load_export

    shapes = load_export(export_dir).gemm_shapes()
    assert shapes[0][0] > shapes[-1][0] == 1  # convolutions first (one row per pixel), a linear layer last


def test_hand_checked_digit_serial_command():
    """The same GEMM on the D = 1 engine at k = 4, j = 8, derived by hand:

    each row is held for ceil(4/1) = 4 slots: steady 2 * 1 * 4 = 8; cycles 1 + 2 + 8 + (2 + 2 + 1) + 7 + 1 = 24.
    multiply: unchanged, j x k bits per MAC in total                          =   0.8 pJ
    add: 8 slots * 4 PEs * 0.1 * 10/32 (psum = bits(2*255*1) + 1 = 10)        =   1.0 pJ
         + shift-and-add 8 slots * 2 columns * 0.1 * 18/32 (column sum 18)   =   0.9 pJ
    registers: PE 8 act + 1 swap + 3 place + 10 psum + 16 weights = 38 bits, * 4 PEs + 2 * 18 shift-and-add
               = 188 bits; 24 cycles * 188 * 0.003125                          =  14.1 pJ
    accumulator, requant, buffers: per row, as on the bit-parallel engine     = 100.95 pJ
    """
    cfg = EngineConfig(rows=2, cols=2, base_bits=8, act_bits=8, acc_bits=32, max_m=4, max_k=64, digit_bits=1)
    energy = gemms_energy(cfg, [(2, 2, 2)], k=4, j=8)
    assert energy.multiply == pytest.approx(0.8)
    assert energy.add == pytest.approx(1.9)
    assert energy.registers == pytest.approx(14.1)
    assert energy.accumulator + energy.requant + energy.buffers == pytest.approx(0 + 7.2 + 93.75)
    assert energy.total == pytest.approx(117.75)


def test_digit_serial_array_energy_falls_with_k_and_the_rest_does_not():
    """D = 1: the array's adds and clocked registers scale with the ceil(k/D) digit cycles (up to the fixed
    fill and drain); accumulator, requantizer and streams are charged per row at every k."""
    cfg = EngineConfig(rows=4, cols=4, max_m=256, max_k=1024, max_n=1024, digit_bits=1)
    shapes = [(256, 256, 64)]
    full, low = gemms_energy(cfg, shapes, k=8), gemms_energy(cfg, shapes, k=1)
    assert 7.5 < full.add / low.add <= 8 and 7 < full.registers / low.registers < 8
    for part in ("accumulator", "requant", "buffers"):
        assert getattr(full, part) == getattr(low, part)


def test_hand_checked_pipelined_command():
    """The same GEMM as test_hand_checked_command on the pipelined engine (EngineConfig.pipelined): two
    more cycles through the array and one for the column-sum register, 2 + 4 + 2 + 9 + 3 = 20 cycles, and
    per PE a 17-bit product register (the weight register coincides with the active one):
    registers 20 cycles * 4 PEs * (43 + 17) bits * 0.1/32 pJ = 15 pJ; nothing else changes."""
    pipelined = gemms_energy(replace(CFG, pipelined=True), [(2, 2, 2)], k=4, j=8)
    plain = gemms_energy(CFG, [(2, 2, 2)], k=4, j=8)
    assert pipelined.registers == pytest.approx(15)
    assert pipelined.total - pipelined.registers == pytest.approx(plain.total - plain.registers)


def accumulator_port_probe(counts: dict[str, int]):
    """A probe counting the cycles in which the engine's accumulator memory reads and writes a word."""

    def probe(design):
        (datapath,) = (sub for sub, name, *_ in design.subfragments if name == "datapath")
        (accumulator,) = (sub.origins[0] for sub, name, *_ in datapath.subfragments if name == "accumulator")
        (read,), (write,) = accumulator.memory.read_ports, accumulator.memory.write_ports

        async def testbench(ctx):
            async for _, _, read_en, write_en in ctx.tick().sample(read.en, write.en):
                counts["reads"] += read_en
                counts["writes"] += write_en

        return testbench

    return probe


@pytest.mark.parametrize(
    "config",
    ["3x5-b8a8acc32-m16k64n64", "1x2-b3a2acc12-m8k16n16-pipelined=True", "3x5-b8a8acc32-m16k64n64-digit_bits=2"]
    + ["2x2-b4a4acc16-m8k64n64-digit_bits=1-pipelined=True"],
)
def test_accumulator_traffic_counted_in_the_events_is_what_the_engine_does(config):
    """The accumulator reads and writes that the energy model charges, against the memory ports' enables
    in the Amaranth simulation of the corner shapes on ideal streams (where every running cycle is a slot,
    so an enabled port is an access): no read in a first K-tile or an empty slot, no write in a last."""
    cfg = AMARANTH[config]
    scenario = build("shapes", cfg, 5)
    counts = {"reads": 0, "writes": 0}
    simulate(cfg, scenario, probes=(accumulator_port_probe(counts),))
    shapes = [(c.X.shape[0], c.X.shape[1], c.W.shape[1], c.wbits) for c in scenario.commands]
    events = [command_events(cfg, *shape) for shape in shapes]
    expected = {"reads": sum(e.acc_reads for e in events), "writes": sum(e.acc_writes for e in events)}
    assert counts == expected and expected["reads"] > 0, (config, scenario.seed)


def test_scalesim_formulas_on_a_hand_worked_gemm():
    """M = 20, K = 9, N = 5 on a 4x2 array, by hand from 2R + C + T - 2 = 8 + T per fold:
    WS: ceil(9/4) * ceil(5/2) = 9 folds of T = 20: 9 * 28 = 252;
    OS: ceil(20/4) * ceil(5/2) = 15 folds of T = 9: 15 * 17 = 255."""
    assert scalesim_cycles("ws", 4, 2, 20, 9, 5) == 252
    assert scalesim_cycles("os", 4, 2, 20, 9, 5) == 255


def test_output_stationary_estimate_keeps_partial_sums_in_the_pes():
    """On the hand-checked 2x2 GEMM: no accumulator memory; each PE adds at ACC bits in each of K steps;
    operands are read once per fold (one fold here), priced as in sim.energy."""
    energy = output_stationary_energy(CFG, 2, 2, 2, k=4, j=8)
    assert energy.accumulator == 0
    assert energy.multiply == pytest.approx(0.8)
    assert energy.add == pytest.approx(2 * 4 * 0.1)  # K = 2 steps x 4 PEs at 32 bits
    cycles = 2 * 2 + 2 + 2 - 2  # one fold, T = K = 2
    assert energy.registers == pytest.approx(cycles * 4 * (8 + 8 + 32) * 0.1 / 32)
    assert energy.buffers == pytest.approx((32 + 32 + 108 + 128) * 0.3125)  # the same bits as the WS case
