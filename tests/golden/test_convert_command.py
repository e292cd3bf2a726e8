"""`python -m golden.convert` / `nestmac convert`: a user's model file converted and its graph printed, one row per
node with what runs it; a model that does not convert is one `error:` line naming every problem, exit status 2.
Expected GEMM shapes are worked out from the architecture below, not read back from the export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import golden.convert
from contract.cli import run_main

REPO = Path(__file__).resolve().parents[2]
MODELS = '''
import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """A stem conv with a bias and no BatchNorm, a Dropout, a residual block, global pooling and a Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.drop = nn.Dropout(0.2)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.drop(F.relu(self.stem(x)))
        x = torch.relu(self.body(x) + x)
        return self.head(torch.flatten(x.mean((2, 3)), 1))


class Unsupported(nn.Module):
    """Three problems: a clamp below zero, a conv padding unevenly and a Sigmoid."""

    def __init__(self):
        super().__init__()
        self.conv, self.uneven = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 2, padding="same")
        self.act, self.fc = nn.Sigmoid(), nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(self.act(self.uneven(F.hardtanh(self.conv(x), -1.0, 1.0))).flatten(1))
'''


@pytest.fixture
def models(tmp_path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


def test_the_converted_graph_is_printed_with_what_runs_each_node(models, capsys):
    assert run_main(golden.convert.main, [f"{models}:Residual", "--input-shape", "1,28,28", "--scheme", "twos"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{models}:Residual, input 1x28x28: 3 GEMM layers on the engine, 1 host adds")
    rows = [line.split() for line in out[1:6]]
    assert rows == [
        "node op reads output runs as".split(),
        "stem conv 3x3/2 pad 1 input 8x14x14 engine GEMM M=196 K=9 N=8, ReLU".split(),
        "body_0 conv 3x3/1 pad 1 stem 8x14x14 engine GEMM M=196 K=72 N=8, raw".split(),
        "add add body_0,stem 8x14x14 host add, ReLU".split(),
        # The pooled Linear's codes repeat over the 14x14 pixels it averages (golden.export): K = 8 * 196.
        "head linear (pooled) add 10 engine GEMM M=1 K=1568 N=10, raw (logits)".split(),
    ]
    assert out[6:] == ["removed (a no-op at inference): node 'drop' (module 'drop'): Dropout"]


def test_a_model_that_does_not_convert_is_one_error_line_naming_every_problem(models, capsys):
    assert run_main(golden.convert.main, [f"{models}:Unsupported", "--input-shape", "1,28,28"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("error: 3 problems: (1) node 'hardtanh': only a clamp to [0, b] with a number b > 0 ")
    assert "(2) node 'uneven' (module 'uneven'): padding='same' with kernel [2, 2] and dilation [1, 1] pads" in line
    assert line.endswith("(3) unsupported operation Sigmoid at node 'act' (module 'act')")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{models}:Residual", "--input-shape", "1,28"], "argument --input-shape: expected C,H,W"),
        (["{models}:Residual", "--input-shape", "1,2048,2048"], "C*H*W at most 1048576"),
        (["{models}:Residual", "--input-shape", "3,28,28"], "the model does not run on input shape [3, 28, 28]"),
        (["{models}:Nothing", "--input-shape", "1,28,28"], "has no torch.nn.Module subclass named 'Nothing'"),
        (["missing.py:Net", "--input-shape", "1,28,28"], "model file not found: missing.py"),
    ],
)
def test_bad_input_is_one_error_line(models, capsys, argv, message):
    assert run_main(golden.convert.main, [arg.format(models=models) for arg in argv]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and message in line


def test_python_m_golden_convert_runs_as_a_command(models):
    """The module's __main__ (one interpreter start): a refusal is one line and exit status 2, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "golden.convert", f"{models}:Unsupported", "--input-shape", "1,28,28"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: 3 problems: ") and len(result.stderr.splitlines()) == 1
