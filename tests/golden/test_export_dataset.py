"""An export records the data set its model was trained on and that set's pixel scale, and the tools that
read a model default to that data set (issue: a Fashion-MNIST export said pixel / 16, the digits' scale)."""

from __future__ import annotations

import json

import pytest

import apps.run
from contract.model_files import load_export
from contract.model_format import ExportError
from golden import evaluate, export, train
from tests.golden.test_golden_cli import run_in_process
from tests.idx_files import synthetic_fashion_dir

SMALL_28X28 = """
import torch
from torch import nn

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3, stride=4, padding=1, bias=False), nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))
"""


def trained_export(tmp_path, capsys, data_args: list[str], net: str) -> tuple:
    checkpoint, out = tmp_path / "m.pt", tmp_path / "export"
    argv = ["--method", "truncquant", "--scheme", "offset", "--epochs", "1", "--limit", "40", "--net", net]
    result = run_in_process(train.main, [*argv, *data_args, "--out", str(checkpoint)], capsys)
    assert result.returncode == 0, result.stderr
    result = run_in_process(export.main, [str(checkpoint), "--out", str(out)], capsys)
    assert result.returncode == 0, result.stderr
    return checkpoint, out


@pytest.mark.parametrize("data", ["digits", "fashion-mnist"])
def test_each_data_set_is_recorded_with_its_scale(tmp_path, capsys, data):
    if data == "digits":
        data_args, net = [], "digits"
    else:
        (tmp_path / "small.py").write_text(SMALL_28X28)
        data_args = ["--data", data, "--data-dir", str(synthetic_fashion_dir(tmp_path / "fashion", 40, 40))]
        net = f"{tmp_path / 'small.py'}:Small"
    _, out = trained_export(tmp_path, capsys, data_args, net)
    entry = json.loads((out / "model.json").read_text())["input"]
    scale = {"digits": 16, "fashion-mnist": 255}[data]  # the digits are 0..16, Fashion-MNIST bytes 0..255
    assert (entry["dataset"], entry["pixel_max"]) == (data, scale)
    assert f"pixel / {scale}," in entry["quantization"]
    assert load_export(out).dataset == data


def test_tools_default_to_the_recorded_data_set(tmp_path, capsys):
    (tmp_path / "small.py").write_text(SMALL_28X28)
    images = synthetic_fashion_dir(tmp_path / "fashion", 40, 40)
    checkpoint, out = trained_export(
        tmp_path, capsys, ["--data", "fashion-mnist", "--data-dir", str(images)], f"{tmp_path / 'small.py'}:Small"
    )
    for model in (checkpoint, out):  # no --data: the 28x28 model is scored on its own data set, not the digits
        result = run_in_process(evaluate.main, [str(model), "--data-dir", str(images), "--bits", "8"], capsys)
        assert result.returncode == 0, result.stderr
        assert "fashion-mnist, 40 test images" in result.stdout
    result = run_in_process(
        apps.run.main, [str(out), "--data-dir", str(images), "--bits", "8", "-o", str(tmp_path / "run")], capsys
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["data"] == "fashion-mnist"


def test_older_exports_load_without_a_data_set_and_a_wrong_scale_is_refused(export_dir, tmp_path):
    meta = json.loads((export_dir / "model.json").read_text())
    assert meta["input"]["dataset"] is None  # the session's digits model was trained in-process, unrecorded
    old = tmp_path / "v3"
    old.mkdir()
    (old / "model.npz").write_bytes((export_dir / "model.npz").read_bytes())
    v3 = meta | {"format_version": 3, "input": {"shape": meta["input"]["shape"]}}
    (old / "model.json").write_text(json.dumps(v3))
    assert load_export(old).dataset is None
    (old / "model.json").write_text(json.dumps(meta | {"input": meta["input"] | {"dataset": "digits"}}))
    with pytest.raises(ExportError, match="pixel_max None is not 16"):
        load_export(old)
    (old / "model.json").write_text(json.dumps(meta | {"input": meta["input"] | {"dataset": "cifar"}}))
    with pytest.raises(ExportError, match="unknown data set 'cifar'"):
        load_export(old)
