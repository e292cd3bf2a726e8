"""Random arguments and corrupted export files thrown at each command-line tool (issue 14).

Every run must exit 0 or 2 with no traceback (a failure is one `error:` line), touch nothing outside its
output path, and leave an earlier good output intact when it fails. Runs are in-process through run_main,
as `python -m` runs them; hypothesis is derandomized with a small budget so the suite stays fast and
repeatable. Steps that need external tools or long training are replaced by stubs that fail or finish at
once: the checks are about what the tools accept and write, not about their numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import apps.run
import apps.sweep
import eda.synth
import golden.convert
import golden.evaluate
import golden.export
import golden.train
import hw.generate
from contract.cli import run_main
from contract.model_format import JSON_NAME, NPZ_NAME
from eda.tools import ToolError
from golden.convert import build_net

FUZZ = settings(
    derandomize=True,
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NASTY = [
    "",
    "0",
    "-1",
    "1",
    "2",
    "0.7",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "9" * 30,
    "2x2",
    "0x16",
    "8,,6",
    ",",
    "8,6,4",
    "--",
    "-h",
]
VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)
TINY_ENGINE = ["--bits", "4", "--array", "1x1", "--max-m", "4", "--max-k", "8", "--max-n", "8", "--acc-bits", "16"]


def flags(*names: str):
    """One or two (flag, random value) pairs, appended after the base arguments so they override them."""
    return st.lists(st.tuples(st.sampled_from(names), VALUES), min_size=1, max_size=2).map(
        lambda pairs: [item for pair in pairs for item in pair]
    )


def snapshot(root: Path, skip: Path | None = None) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (skip is None or (p != skip and skip not in p.parents))
    }


def contents(out: Path) -> dict[str, bytes] | None:
    """What an output holds, whether it is a directory or a single file (None: nothing there)."""
    if out.is_dir():
        return snapshot(out)
    return {"": out.read_bytes()} if out.is_file() else None


class Workspace:
    """A directory holding the inputs and the output path; checks the rules after every run."""

    def __init__(self, root: Path, out: Path):
        self.root, self.out = root, out
        self.good = contents(out)

    def run(self, main, argv: list[str], capsys) -> tuple[int, str]:
        """(exit status, stderr) of one run, once every rule is checked."""
        before = snapshot(self.root, self.out)
        code = run_main(main, argv)
        err = capsys.readouterr().err
        assert code in (0, 2), (argv, code, err)
        assert "Traceback" not in err, (argv, err)
        if code == 2:
            assert [line for line in err.splitlines() if line.startswith("error: ")] == [err.splitlines()[-1]], err
        assert snapshot(self.root, self.out) == before, f"{argv} touched files outside {self.out}"
        assert not [p.name for p in self.root.iterdir() if ".nestmac-" in p.name], "staging left behind"
        if code == 0:
            self.good = contents(self.out)
        else:
            assert contents(self.out) == self.good, f"{argv} failed and changed the earlier output"
        return code, err


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Relative paths (an output named "1e400", say) land in the test's directory, not the working tree."""
    monkeypatch.chdir(tmp_path)


def outputs(out: Path, *inputs: Path):
    """The output path, or one the tools must refuse: the working directory (""), its parent, an input."""
    return st.sampled_from([str(out), str(out), "", str(out.parent), *map(str, inputs)])


@pytest.fixture
def tiny_export(export_dir, tmp_path) -> Path:
    return Path(shutil.copytree(export_dir, tmp_path / "inputs" / "export"))


#: tool -> (main, base arguments, output flag, output path under tmp_path, flags to fuzz)
ARGUMENT_FUZZ = {
    "hw.generate": (
        hw.generate.main,
        TINY_ENGINE,
        "-o",
        "gen",
        ("--bits", "--array", "--act-bits", "--acc-bits", "--max-m", "--max-k", "--max-n"),
    ),
    "golden.train": (
        golden.train.main,
        ["--method", "truncquant", "--scheme", "offset"],
        "--out",
        "models/m.pt",
        ("--epochs", "--seed", "--lr", "--batch-size", "--base-bits", "--act-bits", "--method", "--act-bound"),
    ),
}


@pytest.mark.parametrize("tool", sorted(ARGUMENT_FUZZ))
def test_fuzz_arguments(tool, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        golden.train, "train", lambda spec, *args, **kwargs: build_net("digits", spec).eval()
    )  # no real training
    monkeypatch.setattr(golden.train, "accuracy_rows", lambda model, split: (["k", "accuracy"], [[8, 0.1]]))
    main, base, out_flag, out_name, fuzzed = ARGUMENT_FUZZ[tool]
    out = tmp_path / out_name
    assert run_main(main, [*base, out_flag, str(out)]) == 0  # an earlier good output, to be kept
    space = Workspace(tmp_path, out)

    @FUZZ
    @given(flags(*fuzzed), outputs(out))
    def check(extra, target):
        space.run(main, [*base, *extra, out_flag, target], capsys)

    check()


def test_fuzz_golden_export(tmp_path, checkpoint_file, capsys):
    model = str(shutil.copy(checkpoint_file, tmp_path / "model.pt"))
    (tmp_path / "broken.pt").write_bytes(Path(model).read_bytes()[:500])
    out = tmp_path / "export"
    assert run_main(golden.export.main, [model, "--out", str(out)]) == 0
    space = Workspace(tmp_path, out)
    paths = st.sampled_from([str(tmp_path / name) for name in ("model.pt", "broken.pt", "export", "missing")])

    @FUZZ
    @given(paths, outputs(out, Path(model)), flags("--acc-bits"))
    def check(source, target, extra):
        space.run(golden.export.main, [source, "--out", target, *extra], capsys)

    check()


def test_fuzz_golden_convert(tmp_path, capsys):
    """It only prints: every run leaves the directory as it was (no output path to fuzz)."""
    (tmp_path / "net.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(64, 10)\n\n    def forward(self, x):\n        return self.fc(x.flatten(1))\n"
    )
    (tmp_path / "broken.py").write_text("raise ImportError('broken on purpose')\n")
    for model in ("net.py:Net", "broken.py:Net"):  # Python caches their bytecode beside them on the first import
        run_main(golden.convert.main, [model, "--input-shape", "1,8,8"])
    capsys.readouterr()
    space = Workspace(tmp_path, tmp_path / "nothing")
    models = st.sampled_from(["net.py:Net", "net.py:Other", "broken.py:Net", "missing.py:Net", "digits", "resnet"])

    @FUZZ
    @given(models, flags("--input-shape", "--method", "--scheme"))
    def check(model, extra):
        space.run(golden.convert.main, [model, "--input-shape", "1,8,8", *extra], capsys)

    check()


def corrupt(export: Path, data) -> None:
    """One random corruption of an export: a JSON value replaced, the JSON mangled, or an array replaced by one
    of another rank, shape or dtype."""
    kind = data.draw(st.sampled_from(["json-value", "json-text", "npz-array"]))
    meta = json.loads((export / JSON_NAME).read_text())
    if kind == "json-value":
        junk = data.draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4), st.lists))
        target = data.draw(st.sampled_from([meta, *meta["layers"]]))
        target[data.draw(st.sampled_from(sorted(target)))] = junk
        (export / JSON_NAME).write_text(json.dumps(meta))
    elif kind == "json-text":
        text = (export / JSON_NAME).read_text()
        cut = data.draw(st.integers(0, len(text)))
        mangled = data.draw(st.sampled_from([text[:cut], "[" * 50_000, '{"a": ' + "9" * 5000 + "}", "NaN", ""]))
        (export / JSON_NAME).write_text(mangled)
    else:
        with np.load(export / NPZ_NAME) as npz:
            arrays = dict(npz)
        name = data.draw(st.sampled_from(sorted(arrays)))
        shape = data.draw(st.lists(st.integers(0, 3), max_size=3))
        dtype = data.draw(st.sampled_from(["float64", "bool", "int8", "uint16", "int64"]))
        arrays[name] = np.ones(shape, dtype=dtype)
        np.savez(export / NPZ_NAME, **arrays)


#: tool -> (main, options, output flag or None); each first runs well on the pristine export
CORRUPTION_FUZZ = {
    "golden.evaluate": (golden.evaluate.main, ["--bits", "8"], None),
    "apps.run": (apps.run.main, ["--images", "3", "--bits", "8"], "-o"),
}


@pytest.mark.parametrize("tool", sorted(CORRUPTION_FUZZ))
def test_fuzz_corrupted_exports(tool, tmp_path, tiny_export, capsys):
    main, options, out_flag = CORRUPTION_FUZZ[tool]
    out = tmp_path / "out"
    argv = [str(tiny_export), *options, *([out_flag, str(out)] if out_flag else [])]
    assert run_main(main, argv) == 0
    pristine = {p.name: p.read_bytes() for p in tiny_export.iterdir()}

    @FUZZ
    @given(st.data())
    def check(data):
        for name, content in pristine.items():
            (tiny_export / name).write_bytes(content)
        corrupt(tiny_export, data)
        Workspace(tmp_path, out).run(main, argv, capsys)  # after the corruption: it is this example's input

    check()


def zero_d_weights(export: Path) -> None:
    with np.load(export / NPZ_NAME) as npz:
        arrays = dict(npz) | {"conv0.weight_codes": np.array(7, dtype=np.uint16)}
    np.savez(export / NPZ_NAME, **arrays)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda e: (e / "model.json").write_text("[" * 100_000 + "]" * 100_000), "nested deeper than 32 levels"),
        (lambda e: (e / "model.json").write_text('{"format": ' + "1" * 10_000 + "}"), "more than 40 digits"),
        (zero_d_weights, "'conv0.weight_codes' must be a 2-D integer array, got 0-D uint16"),
    ],
    ids=["deep-json", "huge-integer", "0-d-weights"],
)
def test_named_hostile_exports_are_one_line_errors(tmp_path, tiny_export, capsys, damage, message):
    """issue 14: each of these was a traceback (exit 1)."""
    damage(tiny_export)
    code, err = Workspace(tmp_path, tmp_path / "out").run(golden.evaluate.main, [str(tiny_export)], capsys)
    assert code == 2 and message in err


def test_fuzz_apps_run(tmp_path, tiny_export, capsys):
    out = tmp_path / "run"
    base = [str(tiny_export), "--images", "3", "--bits", "8"]
    assert run_main(apps.run.main, [*base, "-o", str(out)]) == 0
    capsys.readouterr()
    space = Workspace(tmp_path, out)

    @FUZZ
    @given(flags("--array", "--bits", "--max-m", "--batch", "--images", "--clock-mhz"), outputs(out, tiny_export))
    def check(extra, target):
        space.run(apps.run.main, [*base, *extra, "-o", target], capsys)

    check()


def failing_tool(*args, **kwargs):
    raise ToolError("yosys stub: no tools in the fuzz test")


def test_fuzz_eda_synth(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(eda.synth, "run_tool", failing_tool)
    out = tmp_path / "synth"
    out.mkdir()  # the output root: each run's output is a tag directory in it, made only when the run succeeds
    space = Workspace(tmp_path, out)
    base = ["--target", "asic", *TINY_ENGINE, "-o", str(out)]

    @FUZZ
    @given(flags("--bits", "--array", "--max-m", "--freq", "--pnr-timeout", "--seed", "--target", "--dsp"))
    def check(extra):
        assert space.run(eda.synth.main, [*base, *extra], capsys)[0] == 2  # every run ends at the stubbed tool
        assert list(out.iterdir()) == []

    check()


def test_synth_refuses_an_infinite_frequency_before_running_any_tool(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(eda.synth, "run_tool", pytest.fail)
    code, err = Workspace(tmp_path, tmp_path / "synth").run(
        eda.synth.main, ["--target", "ice40-up5k", *TINY_ENGINE, "--freq", "inf", "-o", str(tmp_path / "synth")], capsys
    )
    assert code == 2 and "--freq must be positive and finite, got inf" in err


def test_fuzz_apps_sweep(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(eda.synth, "run_tool", failing_tool)  # inherited by the forked workers
    out = tmp_path / "sweep"
    space = Workspace(tmp_path, out)
    base = ["--target", "asic", "--arrays", "1x1", "--bits", "4", "--max-m", "4", "-o", str(out)]

    @FUZZ
    @given(flags("--arrays", "--bits", "--max-m", "--jobs", "--target"))
    def check(extra):
        space.run(apps.sweep.main, [*base, *extra], capsys)
        assert not out.exists()

    check()


def test_sweep_with_a_failing_point_writes_nothing_not_even_the_energy_table(tmp_path, tiny_export, monkeypatch):
    monkeypatch.setattr(eda.synth, "run_tool", failing_tool)
    out = tmp_path / "sweep"
    argv = ["--target", "asic", "--arrays", "1x1", "--bits", "4", "--model", str(tiny_export), "-o", str(out)]
    assert run_main(apps.sweep.main, argv) == 2
    assert not out.exists()
