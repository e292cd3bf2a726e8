"""The stream players' Python side, without a simulator: beats, their hex text, batches, and the checks.

The players' hex text must be the HDL's payload words of `sim.streams`' beats (the documented order) bit
for bit, and the check of a capture must catch every way a run can go wrong; the RTL runs are in
rtl_tests/test_players_rtl.py.
"""

import numpy as np
import pytest

from contract import streams
from contract.streams import STREAMS
from hw.interface import payload_layout
from sim.model import EngineModel
from sim.streams import beat_counts, command_arrays, concatenate, pack_command
from verif.configs import RTL
from verif.rtl.hexbeats import CaptureError, pack_hex, unpack_hex
from verif.rtl.player_top import Depths, player_verilog
from verif.rtl.players import Batch, Capture, PlayerMemoryError, modelled_spans, problems, split
from verif.scenarios import random_command

CONFIGS = [RTL["3x5-b8a6acc28-m16k128n128"], RTL["2x2-b4a4acc16-m8k64n64"]]


def _commands(cfg, seed, count=6):
    rng = np.random.default_rng(seed)
    return [random_command(cfg, rng, 2 * cfg.rows + 3, 3 * cfg.rows + 1, 2 * cfg.cols + 1) for _ in range(count)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}")
def test_hex_text_is_the_reference_packers_beats(cfg):
    """Every beat of every stream, as text, is the integer the HDL's payload layout makes of `sim.streams`'
    beat; and reading the text back gives the arrays again (signed lanes included)."""
    for command, result in zip(commands := _commands(cfg, 1), EngineModel(cfg).run(commands), strict=True):
        reference = pack_command(cfg, command, result.outputs)
        arrays = command_arrays(cfg, command, result.outputs)
        for stream in STREAMS:
            port = streams.stream(cfg, stream)
            text = pack_hex(port, arrays[stream])
            words = [int(line, 16) for line in text.split()]
            layout = payload_layout(cfg, stream)
            assert words == [layout.const(beat).as_value().value for beat in reference[stream]], stream
            back = unpack_hex(port, text)
            for name, values in arrays[stream].items():
                assert np.array_equal(back[name], np.asarray(values).reshape(back[name].shape)), (stream, name)
        assert {s: len(reference[s]) for s in STREAMS} == beat_counts(cfg, command)


def test_unpack_refuses_x_bits_and_overwide_words():
    layout = streams.stream(CONFIGS[1], "result")
    with pytest.raises(CaptureError, match="x or z"):
        unpack_hex(layout, b"0\n" + b"x" * 9 + b"\n")
    with pytest.raises(CaptureError, match="wider"):
        unpack_hex(layout, b"1" * 40 + b"\n")


def test_batches_fit_the_memories_and_a_command_too_big_is_refused():
    cfg = CONFIGS[0]
    commands = _commands(cfg, 2, 20)
    depths = Depths(cmd=4, param=16, weight=256, act=256, result=256)
    batches = split(cfg, commands, depths)
    assert sum(batches, []) == commands
    for batch in batches:
        used = {s: sum(beat_counts(cfg, c)[s] for c in batch) for s in STREAMS}
        assert all(used[s] <= getattr(depths, s) for s in STREAMS), used
    big = max(commands, key=lambda c: beat_counts(cfg, c)["act"])
    with pytest.raises(PlayerMemoryError, match="act beats, more than the 8 its player holds"):
        split(cfg, [big], Depths(act=8))


def test_every_stream_has_a_player_memory():
    assert set(Depths().as_dict()) == set(STREAMS)


def test_player_top_names_every_stream_of_the_manifest():
    manifest = {
        "top": "nestmac_engine",
        "ports": [{"name": f"{s}__payload", "width": 7 + i} for i, s in enumerate(STREAMS)],
    }
    text = player_verilog(manifest, Depths().as_dict(), 10)
    for index, stream in enumerate(STREAMS):
        assert f".{stream}__payload({stream}_payload)" in text
        assert f"[{7 + index - 1}:0] {stream}_" in text


def _capture(cfg, commands, outputs=None, **status):
    """The capture a perfect engine would write for `commands` on ideal streams."""
    model = EngineModel(cfg).run(commands)
    outputs = outputs or [r.outputs for r in model]
    result = concatenate([command_arrays(cfg, c, o) for c, o in zip(commands, outputs, strict=True)])["result"]
    counts = {s: sum(beat_counts(cfg, c)[s] for c in commands) for s in STREAMS}
    ends = np.cumsum([beat_counts(cfg, c)["result"] for c in commands]) - 1
    result_cycles = np.zeros(counts["result"], dtype=np.int64)
    result_cycles[ends] = [r.last_result_cycle + 5 for r in model]
    base = {f"taken_{s}": counts[s] for s in STREAMS if s != "result"}
    base |= {"results": counts["result"], "violations": 0, "error": 0, "timeout": 0, "aborted": 0, "cycles": 99}
    return Capture(
        base | status,
        result["values"],
        result["last"],
        result_cycles,
        np.array([r.accept_cycle + 5 for r in model]),
    )


def test_problems_finds_each_kind_of_failure():
    """A perfect capture passes; each fault, planted in it, is named."""
    cfg = CONFIGS[1]
    commands = _commands(cfg, 3, 3)
    batch = Batch(commands)
    assert problems(cfg, batch, _capture(cfg, commands)) == []

    def planted(**status):
        return problems(cfg, batch, _capture(cfg, commands, **status))

    assert "result dropped valid" in planted(violations=2)[0]
    assert "timed out" in planted(timeout=1)[0]
    assert "error raised" in planted(error=1)[0]
    assert "took 1 of" in planted(taken_cmd=1)[0]
    wrong = _capture(cfg, commands)
    wrong.values[4, 1] += 1
    assert "result beat 4 (command" in problems(cfg, batch, wrong)[0]
    late = _capture(cfg, commands)
    late.result_cycles[-1] += 1
    assert "model says" in problems(cfg, batch, late)[0]
    # With stalls the cycles are not the model's, and an aborted run need only be right as far as it went.
    assert problems(cfg, Batch(commands, {"act": 0.5}), late) == []
    assert problems(cfg, Batch(commands, abort_at=9), _capture(cfg, commands, results=1, aborted=1)) == []


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}")
def test_modelled_spans_are_the_models(cfg):
    commands = _commands(cfg, 4, 8)
    assert modelled_spans(cfg, commands) == [result.span for result in EngineModel(cfg).run(commands)]
