"""The named engine variants (contract.config.PEKind, Dataflow) and EngineConfig.from_export: derived from the
fields, so that configs, their dicts, ids and manifests stay as they were."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from contract.config import ConfigError, Dataflow, EngineConfig, PEKind
from contract.timing import accumulator_read_slots, column_stage_slots, fill_drain_slots
from verif.configs import KINDS, SMALL


@pytest.mark.parametrize(
    "fields,kind",
    [
        ({}, PEKind.BIT_PARALLEL),
        ({"digit_bits": 4}, PEKind.BIT_PARALLEL),  # D = B is the bit-parallel PE
        ({"switchable": False}, PEKind.FIXED),
        ({"digit_bits": 2}, PEKind.DIGIT_SERIAL),
        ({"digit_bits": 1, "pipelined": True}, PEKind.DIGIT_SERIAL),
    ],
)
def test_the_pe_kind_is_named_by_the_fields_and_adds_nothing_to_the_dict(fields, kind):
    cfg = replace(SMALL, **fields)
    assert cfg.pe_kind is kind and cfg.dataflow is Dataflow.WEIGHT_STATIONARY
    assert set(cfg.as_dict()) <= set(SMALL.as_dict()) | {"digit_bits", "pipelined"}


def test_column_stage_and_accumulator_read_latencies_per_variant():
    """Two slots through the array more when pipelined, and one column-stage slot for the shift-and-add or the
    pipelined column-sum register: the +3 (bit-parallel) and +2 (digit-serial) of docs/architecture.md."""
    array = SMALL.rows + SMALL.cols
    expected = {
        (PEKind.BIT_PARALLEL, False): (0, 1),
        (PEKind.BIT_PARALLEL, True): (1, 2),
        (PEKind.FIXED, False): (0, 1),
        (PEKind.FIXED, True): (1, 2),
        (PEKind.DIGIT_SERIAL, False): (1, 1),
        (PEKind.DIGIT_SERIAL, True): (1, 2),
    }
    for (kind, pipelined), (stage, read) in expected.items():
        cfg = replace(KINDS[kind], pipelined=pipelined)
        assert (column_stage_slots(cfg), accumulator_read_slots(cfg)) == (stage, read), (kind, pipelined)
        assert fill_drain_slots(cfg) == array + 2 * pipelined + stage


def test_from_export_takes_the_widths_of_any_export():
    layer = SimpleNamespace(K=64, N=64)
    export = SimpleNamespace(base_bits=4, act_bits=4, acc_bits=16, layers=[layer], controllers=())
    assert EngineConfig.from_export(export, 2, 2, max_m=8) == SMALL
    assert EngineConfig.from_export(export, 2, 2, 8, digit_bits=1).pe_kind is PEKind.DIGIT_SERIAL
    with pytest.raises(ConfigError, match="--acc-bits 16 is too narrow for --max-k 4096"):
        EngineConfig.from_export(
            SimpleNamespace(**{**vars(export), "layers": [SimpleNamespace(K=4096, N=64)]}), 2, 2, 8
        )


def test_from_export_covers_every_layer_and_controller():
    controller = SimpleNamespace(layer=SimpleNamespace(K=16, N=200))
    layers = [SimpleNamespace(K=100, N=8), SimpleNamespace(K=30, N=40)]
    export = SimpleNamespace(base_bits=8, act_bits=8, acc_bits=32, layers=layers, controllers=(controller,))
    cfg = EngineConfig.from_export(export, 4, 4, 16)
    assert (cfg.max_k, cfg.max_n) == (100, 200)
