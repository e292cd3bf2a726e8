"""The dynamic policy on the cycle model and in `apps.run`: the session's digits model with an untrained
controller attached (golden.dynamic.attach_controller), whose random weights still pick different k for
different images, so every cost below is grouped over a real mix of precisions.

The costs apps.run reports for a test set (sim.network.run_policy: the batched path and the formula per
distinct pass) are held to what running every command of every pass on the cycle-exact model gives
(sim.network.run_batch through golden.dynamic.lower_dynamic), and its accuracy and BitOPs to golden's.
"""

import copy
import csv
import json

import pytest
import torch

from apps.run import main as run_body
from contract.cli import run_main
from contract.config import EngineConfig, parse_array
from contract.model_files import load_export, write_export
from contract.policy import Policy
from contract.program import compile_program
from golden.data import digits_split, input_codes
from golden.dynamic import attach_controller, image_bitops, lower_dynamic
from golden.export import build_export
from golden.infer import execute_golden
from sim.energy import Energy, gemms_energy
from sim.host import HostOps, decision_ops, host_ops
from sim.network import run_batch, run_policy
from sim.program import run_program
from sim.program_cycles import program_step_cycles

IMAGES = 24
BATCH = 5  # passes of 5, 5, 5, 5, 4 images: a partial last pass too
BUDGET = 2.0
CANDIDATES = (1, 2, 4, 8)


@pytest.fixture(scope="module")
def dynamic_export(trained):
    """The session's truncquant/offset digits model (copied: the fixture is shared) with an untrained
    controller for budget 2, its bias centred on training images so that its choices vary."""
    model = copy.deepcopy(trained("truncquant", "offset"))
    images = digits_split().train_x[:200]
    return build_export(attach_controller(model, BUDGET, CANDIDATES, images=images))


@pytest.fixture(scope="module")
def dynamic_dir(dynamic_export, tmp_path_factory):
    path = tmp_path_factory.mktemp("exports") / "digits_dynamic"
    write_export(dynamic_export, path)
    return path


def test_test_images_choose_more_than_one_k(dynamic_export):
    """Without a mix the grouping below would be trivially right; guard the fixture."""
    controller = dynamic_export.controller(BUDGET)
    codes = input_codes(digits_split().test_x[:IMAGES], dynamic_export.act_bits)
    ks = lower_dynamic(dynamic_export, codes, controller, execute_golden).ks
    controlled = [i for i, layer in enumerate(dynamic_export.layers) if layer.name in controller.controls]
    assert any(len(torch.unique(ks[:, i])) > 1 for i in controlled), ks


@pytest.mark.parametrize("digit_bits", [None, 1])
def test_run_policy_costs_are_the_cycle_models_commands(dynamic_export, digit_bits):
    export, split = dynamic_export, digits_split()
    controller = export.controller(BUDGET)
    policy = Policy("dynamic", budget=BUDGET).resolve(export)
    codes, labels = input_codes(split.test_x[:IMAGES], export.act_bits), split.test_y[:IMAGES]
    cfg = EngineConfig.from_export(export, *parse_array("4x4"), max_m=16, digit_bits=digit_bits)
    summary = run_policy(cfg, export, codes, labels, policy, BATCH)

    cycles, macs, correct, energy, host, ks = 0, 0, 0, Energy(), HostOps(), []
    for first in range(0, IMAGES, BATCH):
        images = codes[first : first + BATCH]
        batch = run_batch(cfg, export, images, policy)
        golden = lower_dynamic(export, images, controller, execute_golden)
        # Every command ran at the k its images chose: its rows are exactly those images' rows.
        for run, rows in zip(golden.runs, golden.images, strict=True):
            if run.gemm.layer in controller.controls:
                column = [layer.name for layer in export.layers].index(run.gemm.layer)
                assert set(golden.ks[rows, column].tolist()) == {run.gemm.k}
        assert torch.equal(batch.logits, golden.logits)
        correct += int((batch.logits.argmax(dim=1) == labels[first : first + BATCH]).sum())
        # Each command's cycles from the cycle-exact model's own run, back to back (sim.model).
        cycles += batch.cycles
        macs += batch.macs
        for command, _ in batch.log:
            energy = energy + gemms_energy(cfg, [(command.m, command.k_dim, command.n)], command.wbits)
        host = host + batch.host
        ks.append(golden.ks)
    ks = torch.cat(ks)

    assert summary.correct == correct and summary.passes == 5
    assert (summary.cycles, summary.macs) == (cycles, macs)
    assert summary.energy.total == pytest.approx(energy.total, rel=1e-9)
    assert summary.host == host == host_ops(export, IMAGES) + decision_ops(export, controller, IMAGES)
    assert summary.bitops == int(image_bitops(export, controller, ks).sum())
    for column, counts in enumerate(summary.k_counts):
        assert list(counts) == [int((ks[:, column] == k).sum()) for k in range(1, export.base_bits + 1)]


def test_a_static_vector_is_a_table_of_equal_rows(dynamic_export):
    """One code path: a static policy costs what the same k chosen per image by hand would."""
    export, split = dynamic_export, digits_split()
    codes, labels = input_codes(split.test_x[:IMAGES], export.act_bits), split.test_y[:IMAGES]
    cfg = EngineConfig.from_export(export, 4, 4, max_m=16, digit_bits=1)
    ks = (8, 2, 4, 1)
    policy = Policy("static", ks).resolve(export)
    summary = run_policy(cfg, export, codes, labels, policy, BATCH)
    cycles = sum(
        run_batch(cfg, export, codes[first : first + BATCH], policy).cycles for first in range(0, IMAGES, BATCH)
    )
    assert summary.cycles == cycles and summary.label == "8,2,4,1"
    assert [counts[k - 1] for counts, k in zip(summary.k_counts, ks, strict=True)] == [IMAGES] * 4


def test_apps_run_dynamic_writes_its_row_and_distribution(dynamic_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [str(dynamic_dir), "--array", "4x4", "--digit-bits", "1", "--images", str(IMAGES), "--batch", "4"]
    assert run_main(run_body, [*argv, "--policy", "uniform:8", "--policy", f"dynamic:{BUDGET:g}", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dynamic:2: share of images at each k, per layer" in printed
    rows = {row["k"]: row for row in csv.DictReader(open(out / "results.csv"))}
    assert list(rows) == ["8", "dynamic:2"]
    export = load_export(dynamic_dir)
    controller = export.controller(BUDGET)
    split = digits_split()
    golden = lower_dynamic(export, input_codes(split.test_x[:IMAGES], export.act_bits), controller, execute_golden)
    expected = int((golden.logits.argmax(dim=1) == split.test_y[:IMAGES]).sum()) / IMAGES
    assert float(rows["dynamic:2"]["accuracy"]) == pytest.approx(expected, abs=1e-12)
    bitops = image_bitops(export, controller, golden.ks).double().mean()
    assert float(rows["dynamic:2"]["mbitops_per_inference"]) == pytest.approx(float(bitops) / 1e6)
    summary = json.loads((out / "results.json").read_text())
    shares = {row["k"]: row["k_distribution"] for row in summary["precisions"]}
    assert shares["8"] == {layer.name: {"8": 1.0} for layer in export.layers}
    for layer, column in zip(export.layers, golden.ks.T, strict=True):
        assert shares["dynamic:2"][layer.name] == {
            str(k): pytest.approx(int((column == k).sum()) / IMAGES) for k in torch.unique(column).tolist()
        }


def test_a_dynamic_runs_layers_add_up_at_one_image_per_pass_and_are_left_out_when_passes_mix_k(dynamic_dir, tmp_path):
    """apps.run_layers: with one image per pass each layer's images at each k (k_distribution) give its cost
    exactly, the controller's GEMM a row of its own; with several, a pass mixes k and the split is unknown."""
    argv = [str(dynamic_dir), "--array", "4x4", "--digit-bits", "1", "--images", str(IMAGES)]
    for batch in (1, 4):
        out = tmp_path / f"batch{batch}"
        assert (
            run_main(run_body, [*argv, "--batch", str(batch), "--policy", f"dynamic:{BUDGET:g}", "-o", str(out)]) == 0
        )
        (policy,) = json.loads((out / "results.json").read_text())["precisions"]
        (breakdown,) = json.loads((out / "layers.json").read_text())["precisions"]
        if batch > 1:
            assert breakdown["layers"] is None and policy["bytes_per_inference"] is None
            continue
        layers = breakdown["layers"]
        assert [layer["name"] for layer in layers] == [*policy["k_distribution"], "controller"]
        for field in ("cycles_per_inference", "energy_nj_per_inference", "macs_per_inference"):
            assert sum(layer[field] for layer in layers) == pytest.approx(policy[field]), field


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ("dynamic:3", "no controller for budget 3"),
        ("dynamic:9", "1..8"),
        ("dynamic:two", "1..8"),
        ("static:8,4", "2 entries for a network of 4"),
    ],
)
def test_a_bad_dynamic_policy_is_one_error_line_and_writes_nothing(dynamic_dir, tmp_path, capsys, policy, says):
    out = tmp_path / "run"
    assert run_main(run_body, [str(dynamic_dir), "--images", "4", "--policy", policy, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and says in err[0], err
    assert not out.exists()


def test_dynamic_on_an_export_without_a_controller_names_the_export(export_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_main(run_body, [str(export_dir), "--images", "4", "--policy", "dynamic", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no controller" in err[0] and str(export_dir) in err[0], err
    assert not out.exists()


def test_a_dynamic_policy_as_a_program(dynamic_export, dynamic_dir, tmp_path, capsys):
    """apps.run --program runs the controller on chip: the accuracy of the GEMM-command run, host cycles 0, and
    the cycles per inference the mean of each image's program cycles at the k the reference executor chose."""
    base = [str(dynamic_dir), "--array", "4x4", "--images", str(IMAGES), "--policy", "dynamic"]
    assert run_main(run_body, [*base, "-o", str(tmp_path / "gemm")]) == 0
    assert run_main(run_body, [*base, "--program", "-o", str(tmp_path / "program")]) == 0
    capsys.readouterr()
    gemm, program_run = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("gemm", "program"))
    row, reference = program_run["precisions"][0], gemm["precisions"][0]
    assert row["accuracy"] == reference["accuracy"] and row["host_cycles_per_inference"] == 0
    assert row["k_distribution"] == reference["k_distribution"]
    program, images = compile_program(dynamic_export, 4, 4, 4096, Policy("dynamic").resolve(dynamic_export))
    cfg = EngineConfig(rows=4, cols=4, max_m=1024, **{k: v for k, v in program.gemm_limits().items() if k != "max_m"})
    codes = input_codes(digits_split().test_x[:IMAGES], dynamic_export.act_bits)
    chosen = run_program(program, images, codes).ks
    cycles = [
        sum(
            program_step_cycles(cfg, program, d, k)
            for d, k in zip([None, *program.descriptors], [None, *ks], strict=True)
        )
        for ks in chosen.tolist()
    ]
    assert row["cycles_per_inference"] == pytest.approx(sum(cycles) / IMAGES)
