"""Export format version 5 (issue 24): pooling nodes and a convolution's pairs, dilation and groups are
written, read back and validated; older exports still load; layer programs refuse the new steps by name."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contract.model_files import load_export, write_export
from contract.model_format import FORMAT_VERSION, ExportError, GraphNode, Pooling
from contract.policy import Policy
from contract.program import ProgramError, compile_program
from golden.convert import convert
from golden.export import build_export
from golden.layers import QuantSpec

SHAPE = (2, 8, 8)


class Net(nn.Module):
    def __init__(self, conv: nn.Conv2d, pool: nn.Module):
        super().__init__()
        self.conv, self.pool = conv, pool
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        return self.fc(self.pool(F.relu(self.conv(x))).flatten(1))


def export_of(conv: nn.Conv2d | None = None, pool: nn.Module | None = None):
    net = Net(conv or nn.Conv2d(2, 4, 3, padding=1), pool or nn.Identity())
    net(torch.zeros(1, *SHAPE))  # materialises the lazy Linear
    return build_export(convert(net.eval(), QuantSpec("truncquant", "offset"), SHAPE).eval())


def test_version_5_round_trips_pooling_and_conv_geometry(tmp_path):
    conv = nn.Conv2d(2, 4, (1, 3), stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=2)
    export = export_of(conv, nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False))
    write_export(export, tmp_path / "e")
    meta = json.loads((tmp_path / "e" / "model.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION == 6  # version 6 keeps version 5's fields as they were
    layer = meta["layers"][0]
    assert (layer["kernel"], layer["stride"], layer["padding"], layer["dilation"], layer["groups"]) == (
        [1, 3],
        [2, 1],
        [0, 2],
        [1, 2],
        2,
    )
    assert (layer["K"], layer["N"]) == (1 * 3, 4)  # one group's channels times the kernel's taps
    pool = meta["graph"][1]
    assert pool == {
        "name": "pool",
        "op": "avgpool",
        "inputs": ["conv"],
        "kernel": [3, 3],
        "stride": [2, 2],
        "padding": [1, 1],
        "dilation": [1, 1],
        "ceil_mode": True,
        "count_include_pad": False,
        "divisor_override": None,
    }
    assert load_export(tmp_path / "e").describe() == export.describe()


def test_a_version_4_export_without_the_new_keys_loads_as_dense_undilated(tmp_path):
    export = export_of()
    write_export(export, tmp_path / "e")
    path = tmp_path / "e" / "model.json"
    meta = json.loads(path.read_text())
    for key in ("dilation", "groups"):
        del meta["layers"][0][key]
    path.write_text(json.dumps(meta | {"format_version": 4}))
    loaded = load_export(tmp_path / "e")
    assert (loaded.layers[0].dilation, loaded.layers[0].groups) == (1, 1)


def test_a_reader_refuses_a_newer_format_by_its_version(tmp_path):
    """As a version-4 reader refuses a version-5 export: the version is checked before anything else."""
    write_export(export_of(), tmp_path / "e")
    path = tmp_path / "e" / "model.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ExportError, match=f"format version {FORMAT_VERSION + 1} is not one of 1, 2, 3, 4, 5"):
        load_export(tmp_path / "e")


def _with_pooling(export, pooling: Pooling | None, op: str = "maxpool", source: str = "conv"):
    graph = list(export.nodes)
    graph[1] = GraphNode("pool", op, (source,), pooling)
    return dataclasses.replace(export, graph=tuple(graph))


@pytest.mark.parametrize(
    "op, pooling, message",
    [
        ("maxpool", Pooling((2, 2), (2, 2), (2, 0)), "padding at most half the kernel"),
        ("maxpool", Pooling((2, 2), (0, 2)), "kernel, stride and dilation must be positive"),
        ("maxpool", None, "a pooling node, and only one, has a pooling window"),
        ("avgpool", Pooling((2, 2), (2, 2), dilation=(2, 2)), "an average pooling has no dilation"),
        ("avgpool", Pooling((2, 2), (2, 2), divisor_override=0), "divisor_override must be a positive integer"),
        ("maxpool", Pooling((2, 2), (2, 2), divisor_override=3), "count_include_pad and divisor_override are an"),
        ("maxpool", Pooling((9, 9), (1, 1)), "leaves no output"),
        ("maxpool", Pooling((3, 3), (1, 1), (1, 1), (8, 8)), "a window with no tap in it"),
    ],
)
def test_a_bad_pooling_window_is_refused(op, pooling, message):
    export = export_of(pool=nn.MaxPool2d(2))
    with pytest.raises(ExportError, match=message):
        _with_pooling(export, pooling, op)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(groups=3), "groups 3 must be a positive integer dividing"),
        (dict(dilation=(1, 0)), "must be integers or \\[height, width\\] pairs"),
        (dict(padding=(1, 2)), "output size should be 8x10"),
    ],
)
def test_a_bad_conv_geometry_is_refused(change, message):
    export = export_of(nn.Conv2d(2, 4, 3, padding=1, groups=2))
    layers = (dataclasses.replace(export.layers[0], **change), *export.layers[1:])
    with pytest.raises(ExportError, match=message):
        dataclasses.replace(export, layers=layers)


@pytest.mark.parametrize(
    "conv, pool, message",
    [
        (None, nn.MaxPool2d(2), "max pooling is not yet supported by layer programs \\(pool\\)"),
        (None, nn.AvgPool2d(3, 1, 1), "average pooling is not yet supported by layer programs \\(pool\\)"),
        (nn.Conv2d(2, 4, 3, padding=1, groups=2), None, "grouped convolution is not yet supported by layer programs"),
        (nn.Conv2d(2, 4, 3, padding=2, dilation=2), None, "dilated convolution is not yet supported"),
        (nn.Conv2d(2, 4, (3, 1), padding=(1, 0)), None, "a non-square convolution is not yet supported"),
    ],
)
def test_layer_programs_refuse_the_new_steps_by_name(conv, pool, message):
    export = export_of(conv, pool)
    with pytest.raises(ProgramError, match=message):
        compile_program(export, 8, 8, 4096, Policy("uniform", (8,)).resolve(export))
