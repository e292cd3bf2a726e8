"""The stall enable's copies (hw/stall.py), each computed from registers of its own, against the single
enable they replace, computed here from the originals they follow: in every cycle of random stalls on
every stream, every copy must equal `running & inputs present & output room`."""

from __future__ import annotations

import pytest

from verif.amaranth_streams import simulate
from verif.configs import AMARANTH
from verif.scenarios import build


def single_enable_probe(cycles: list[tuple[int, int, tuple[int, ...]]]):
    """Records, per cycle, whether a command runs, the single enable from the originals and every copy."""

    def probe(design):
        parts = {name: sub.origins[0] for sub, name, *_ in design.subfragments}
        sequencer, datapath, fifo, stall = (parts[n] for n in ("sequencer", "datapath", "out_fifo", "stall"))
        signals = (
            sequencer.running,
            sequencer.want_act,
            sequencer.want_weight,
            datapath.param_wanted,
            datapath.result_valid,
            fifo.w_rdy,
            stall.act_valid,
            stall.weight_valid,
            stall.param_valid,
            stall.advance,
        )

        async def testbench(ctx):
            async for (
                _,
                _,
                running,
                w_act,
                w_weight,
                w_param,
                result,
                room,
                act,
                weight,
                param,
                copies,
            ) in ctx.tick().sample(*signals):
                present = (not w_act or act) and (not w_weight or weight) and (not w_param or param)
                single = int(bool(running and present and (not result or room)))
                cycles.append((running, single, tuple((copies >> i) & 1 for i in range(len(stall.advance)))))

        return testbench

    return probe


@pytest.mark.parametrize("config", ["2x2-b4a4acc16-m8k64n64", "2x2-b4a4acc16-m8k64n64-digit_bits=1-pipelined=True"])
@pytest.mark.parametrize("name", ["stalls", "backpressure"])
def test_every_copy_equals_the_single_enable(config, name):
    cfg = AMARANTH[config]
    seed = 7
    cycles = []
    simulate(cfg, build(name, cfg, seed), probes=(single_enable_probe(cycles),))
    wrong = [(n, single, copies) for n, (_, single, copies) in enumerate(cycles) if set(copies) != {single}]
    assert wrong == [], f"seed {seed}: (cycle, single enable, copies) {wrong[:5]}"
    running = {single for run, single, _ in cycles if run}
    assert running == {0, 1}, f"seed {seed}: a running command was never stalled, or never advanced"
