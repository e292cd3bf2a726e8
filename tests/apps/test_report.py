"""`nestmac report`: one HTML page from a run's results.json and synthesis reports, checked against them."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from apps.report import main
from apps.report_svg import nice_ticks
from apps.run import main as run_main_of_apps_run
from contract.cli import run_main
from contract.config import EngineConfig, engine_tag
from hw.engine import BLOCK_ORDER

ENGINE = EngineConfig(rows=4, cols=4, max_m=256)


@pytest.fixture(scope="module")
def run_dir(export_dir, tmp_path_factory):
    """A small apps.run output of the session's digits export: two k, 24 images, 4 per pass."""
    out = tmp_path_factory.mktemp("run") / "k8,2"
    args = [str(export_dir), "--array", "4x4", "--bits", "8,2", "--images", "24", "--batch", "4", "-o", str(out)]
    assert run_main(run_main_of_apps_run, args) == 0
    return out


def asic_report(config: EngineConfig = ENGINE) -> dict:
    """An eda.synth ASIC report.json (its fields, figures made up: the page must show whatever it is given)."""
    blocks = {
        name: {"cells": {}, "nand2_eq": 1000.5 * (i + 1), "transistors": 4000 * (i + 1)}
        for i, name in enumerate(BLOCK_ORDER)
    }
    return {
        "tag": f"asic-{engine_tag(config)}",
        "target": "asic",
        "config": config.as_dict(),
        "gates": {
            "blocks": blocks,
            "total_nand2_eq": sum(b["nand2_eq"] for b in blocks.values()),
            "total_transistors": 1,
        },
        "memory": {"bits": 32768},
        "area": {"node": "45 nm", "logic_um2": 12345.6, "memory_um2": 22676.0, "total_mm2": 0.035},
    }


def fpga_report() -> dict:
    return {
        "tag": f"ecp5-25k-{engine_tag(ENGINE)}",
        "target": "ecp5-25k",
        "config": ENGINE.as_dict(),
        "resources": {"lut": 2345, "ff": 1234, "carry": 321, "dsp": 8, "bram": 2},
        "capacity": {"lut": 24288, "ff": 24288, "dsp": 28, "bram": 56},
        "fits": True,
        "fit_detail": "placed and routed",
        "fmax_mhz": 71.37,
        "target_mhz": 100.0,
        "timing_met": False,
        "placement_seed": None,
        "critical_path": {"from": "a", "to": "b", "ns": 14.0, "logic_ns": 6.0, "routing_ns": 8.0},
    }


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


class Cells(HTMLParser):
    """Every table cell that names its source (data-key): key -> (shown text, scale); and the embedded data."""

    def __init__(self, html: str):
        super().__init__()
        self.cells, self.data, self._open, self._in_data = {}, None, None, False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and "data-key" in attrs:
            self._open = (attrs["data-key"], float(attrs.get("data-scale", 1)))
        self._in_data = tag == "script" and attrs.get("id") == "nestmac-data"

    def handle_data(self, text):
        if self._open:
            key, scale = self._open
            self.cells[key] = (text, scale)
            self._open = None
        elif self._in_data:
            self.data = json.loads(text)
            self._in_data = False


def lookup(data, key: str):
    for part in key.split("/"):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def make_report(run_dir: Path, tmp_path: Path, *synth: dict) -> tuple[Path, list[Path]]:
    paths = [write_json(tmp_path / "synth" / report["tag"] / "report.json", report) for report in synth]
    out = tmp_path / "page.html"
    args = [str(run_dir), *(arg for path in paths for arg in ("--synth", str(path))), "-o", str(out)]
    assert run_main(main, args) == 0
    return out, paths


def test_every_figure_on_the_page_is_its_source_json(run_dir, tmp_path):
    out, _ = make_report(run_dir, tmp_path, asic_report(), fpga_report())
    html = out.read_text()
    page = Cells(html)
    run, layers = (json.loads((run_dir / name).read_text()) for name in ("results.json", "layers.json"))
    sources = {"run": run, "layers": layers, "synth": [asic_report(), fpga_report()]}
    assert {key: page.data[key] for key in sources} == sources
    for key, (text, scale) in page.cells.items():
        value = lookup(sources, key)
        shown = float(text.replace(",", ""))
        assert shown == pytest.approx(value * scale, rel=1e-3, abs=0.5), key
    shown = set(page.cells)
    for i, policy in enumerate(run["precisions"]):
        for field in ("accuracy", "cycles_per_inference", "mac_utilisation", "energy_nj_per_inference", "gops"):
            assert f"run/precisions/{i}/{field}" in shown
        assert f"run/precisions/{i}/tops_per_w" in shown
        assert {f"run/precisions/{i}/bytes_per_inference/{s}" for s in policy["bytes_per_inference"]} <= shown
        assert f"run/precisions/{i}/energy_nj_by_part/multiply" in shown
        for j in range(len(layers["precisions"][i]["layers"])):
            assert f"layers/precisions/{i}/layers/{j}/cycles_per_inference" in shown
    assert {f"synth/0/gates/blocks/{name}/nand2_eq" for name in BLOCK_ORDER} <= shown
    assert {"synth/1/fmax_mhz", "synth/1/resources/lut", "run/clock_mhz", "run/engine/digit_bits"} - shown == {
        "run/engine/digit_bits"  # a bit-parallel engine: D is B
    }
    assert run["energy_table"]["name"] in html and "ecp5-25k" in html
    assert html.count("<svg") == 4  # accuracy against energy and latency, cycles per layer, area by block
    # Self-contained: no scripts or styles fetched, no address but the SVG namespace.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert set(re.findall(r"https?://[^\"'<> ]+", html)) <= {"http://www.w3.org/2000/svg"}


def test_the_layers_add_up_to_the_runs_engine_totals(run_dir):
    """apps.run's per-layer breakdown (layers.json): its cycles, energies and traffic sum to each policy's own
    engine figures in results.json."""
    run, per_layer = (json.loads((run_dir / name).read_text()) for name in ("results.json", "layers.json"))
    for policy, breakdown in zip(run["precisions"], per_layer["precisions"], strict=True):
        assert breakdown["k"] == policy["k"]
        layers = breakdown["layers"]
        assert sum(layer["cycles_per_inference"] for layer in layers) == pytest.approx(policy["cycles_per_inference"])
        assert sum(layer["energy_nj_per_inference"] for layer in layers) == pytest.approx(
            policy["energy_nj_per_inference"]
        )
        assert policy["energy_nj_by_part"]["total"] == pytest.approx(policy["energy_nj_per_inference"])
        assert sum(layer["macs_per_inference"] for layer in layers) == pytest.approx(policy["macs_per_inference"])
        for stream, total in policy["bytes_per_inference"].items():
            assert sum(layer["bytes_per_inference"][stream] for layer in layers) == pytest.approx(total)
        # The bit-parallel engine streams every weight code at full B bits, whatever k.
        assert policy["bytes_per_inference"] == run["precisions"][0]["bytes_per_inference"]


def corrupt(run_dir: Path, tmp_path: Path, change, name: str = "results.json") -> Path:
    """A copy of the run whose file `name` `change` has edited."""
    copy = Path(shutil.copytree(run_dir, tmp_path / "bad-run"))
    data = json.loads((copy / name).read_text())
    change(data)
    (copy / name).write_text(json.dumps(data))
    return copy


BAD_INPUTS = {
    "no results": (lambda run_dir, tmp_path: [str(tmp_path)], "holds no results.json"),
    "missing run": (lambda run_dir, tmp_path: [str(tmp_path / "nowhere")], "holds no results.json"),
    "no accuracy": (
        lambda run_dir, tmp_path: [str(corrupt(run_dir, tmp_path, lambda d: d["precisions"][0].pop("accuracy")))],
        "accuracy is missing",
    ),
    "bad engine": (
        lambda run_dir, tmp_path: [str(corrupt(run_dir, tmp_path, lambda d: d["engine"].update(rows=0)))],
        "not a valid configuration",
    ),
    "layers not a list": (
        lambda run_dir, tmp_path: [
            str(corrupt(run_dir, tmp_path, lambda d: d["precisions"][1].update(layers=3), "layers.json"))
        ],
        "layers is missing or not a list",
    ),
    "layers of another run": (
        lambda run_dir, tmp_path: [str(corrupt(run_dir, tmp_path, lambda d: d["precisions"].pop(), "layers.json"))],
        "results.json others",
    ),
    "another engine's synthesis": (
        lambda run_dir, tmp_path: [
            str(run_dir),
            "--synth",
            str(write_json(tmp_path / "s.json", asic_report(EngineConfig(rows=8, cols=8)))),
        ],
        "rows 8 (run: 4)",
    ),
    "not a synthesis report": (
        lambda run_dir, tmp_path: [
            str(run_dir),
            "--synth",
            str(write_json(tmp_path / "s.json", {"tag": "t", "target": "asic", "config": ENGINE.as_dict()})),
        ],
        "neither gates",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_error_line_and_writes_nothing(run_dir, tmp_path, capsys, case):
    arguments, message = BAD_INPUTS[case]
    out = tmp_path / "out" / "page.html"
    assert run_main(main, [*arguments(run_dir, tmp_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.parent.exists()


def test_the_default_page_is_named_after_the_run_and_refuses_another_runs(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NESTMAC_BUILD", str(tmp_path / "build"))
    below = Path(shutil.copytree(run_dir, tmp_path / "build" / "run" / "digits" / "4x4-tag" / "k8,2"))
    assert run_main(main, [str(below)]) == 0
    page = tmp_path / "build" / "report" / "digits" / "4x4-tag" / "k8,2.html"
    assert page.is_file()
    assert run_main(main, [str(below)]) == 0  # the same inputs again replace their own page
    synth = write_json(tmp_path / "synth.json", asic_report())
    assert run_main(main, [str(below), "--synth", str(synth)]) == 0
    assert (page.parent / f"k8,2+{asic_report()['tag']}.html").is_file()
    # Two runs outside build/run with one name share a default page: the second is refused, the first kept.
    first, second = (Path(shutil.copytree(run_dir, tmp_path / where / "k8,2")) for where in ("a", "b"))
    assert run_main(main, [str(first)]) == 0
    kept = (tmp_path / "build" / "report" / "k8,2.html").read_text()
    capsys.readouterr()
    assert run_main(main, [str(second)]) == 2
    assert "is the report of other inputs" in capsys.readouterr().err
    assert (tmp_path / "build" / "report" / "k8,2.html").read_text() == kept
    # Any file that is not a page of this tool is refused, with -o too.
    other = tmp_path / "notes.html"
    other.write_text("<html>mine</html>")
    assert run_main(main, [str(first), "-o", str(other)]) == 2
    assert other.read_text() == "<html>mine</html>"


def chromium() -> str:
    """The headless browser, or a skip (a failure under CI, whose setup installs it) naming the install."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: tools/system-packages installs it (sudo apt-get install -y chromium)")
        pytest.skip("chromium is not installed (sudo apt-get install -y chromium; make test installs it)")
    return path


@pytest.mark.slow  # a headless Chromium: a few seconds
def test_the_page_renders_offline_in_chromium(run_dir, tmp_path):
    from PIL import Image

    out, _ = make_report(run_dir, tmp_path, asic_report())
    shot = tmp_path / "page.png"
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # tests may run as root, which Chromium's sandbox refuses
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: any network request would fail
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 100  # text, tables and plots, not a blank page
    counts = {colour: count for count, colour in colours}
    assert counts.get((0x00, 0x72, 0xB2), 0) > 500  # the plots' first colour: points and bars were drawn


@pytest.mark.parametrize("lo, hi", [(0, 43025), (93.89, 96.67), (311.8, 311.8), (0, 0), (-2.5, 7e-4), (1e6, 1e6 + 3)])
def test_plot_ticks_are_round_and_cover_every_value(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and 3 <= len(ticks) <= 12, ticks
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and f"{steps.pop():.1e}"[0] in "125", ticks
