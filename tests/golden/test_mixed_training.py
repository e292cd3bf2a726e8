"""Mixed nested training (golden.train --mixed), BatchNorm calibration under per-layer sampling, and the
controller trainer (golden.train_controller) end to end on the digits net, with their bad input."""

from __future__ import annotations

import pytest
import torch

from contract.model_files import load_export
from golden import train, train_controller
from golden.controller import ControllerSpec
from golden.convert import build_net
from golden.data import digits_split, input_codes
from golden.dynamic import budget_bitops, fast_dynamic_logits, image_bitops
from golden.layers import QuantSpec
from golden.model import QuantNet, load_checkpoint
from golden.train import calibrate_batchnorm, mixed_precisions
from tests.golden.test_golden_cli import assert_one_line_error, run_in_process

SEED = 0
SPEC = QuantSpec("truncquant", "offset")


def test_a_mixed_step_trains_b_then_an_independent_k_per_layer():
    draws = torch.Generator().manual_seed(SEED)
    steps = [mixed_precisions(SPEC, 6, draws) for _ in range(200)]
    assert all(step[0] == 8 and len(step[1]) == 6 and set(step[1]) <= set(range(1, 9)) for step in steps)
    # Independent per layer: layers disagree within a step, and every layer sees every k over the steps.
    assert sum(len(set(step[1])) > 1 for step in steps) > 190, f"seed {SEED}"
    assert all({step[1][layer] for step in steps} == set(range(1, 9)) for layer in range(6)), f"seed {SEED}"
    again = torch.Generator().manual_seed(SEED)
    assert [mixed_precisions(SPEC, 6, again) for _ in range(200)] == steps


def test_mixed_calibration_shows_every_batch_twice_to_every_layer_and_precision():
    """Once behind uniform k, once behind a random mix."""
    model = build_net("digits", SPEC)
    images = digits_split().train_x[:96]
    calibrate_batchnorm(model, images, batch_size=32, mixing=torch.Generator().manual_seed(SEED))
    for name, layer in model.layers.items():
        for k, norm in getattr(layer, "bns", {}).items():
            assert int(norm.num_batches_tracked) == 2 * 3, f"{name} k={k}"
    assert not model.training


def test_mixed_calibration_adds_statistics_behind_mixes():
    """Under mixing, a layer's k = 1 BatchNorm is also estimated behind upstream layers at random k, so its
    statistics differ from uniform calibration's (all upstream at k = 1); the first layer reads the input either
    way, so its statistics are the same average over the same images twice."""
    images = digits_split().train_x[:64]
    torch.manual_seed(SEED)
    uniform = build_net("digits", SPEC)
    mixed = QuantNet(uniform.spec, uniform.input_shape, uniform.nodes)
    mixed.load_state_dict(uniform.state_dict())
    calibrate_batchnorm(uniform, images, 64)
    calibrate_batchnorm(mixed, images, 64, torch.Generator().manual_seed(SEED))
    first, second = ("conv0", "conv1")
    assert torch.allclose(uniform.layers[first].bns["1"].running_mean, mixed.layers[first].bns["1"].running_mean)
    assert not torch.equal(uniform.layers[second].bns["1"].running_mean, mixed.layers[second].bns["1"].running_mean)


def test_train_mixed_records_it(tmp_path, capsys):
    out = tmp_path / "mixed.pt"
    result = run_in_process(
        train.main,
        ["--method", "truncquant", "--scheme", "offset", "--epochs", "1", "--mixed", "--out", str(out)],
        capsys,
    )
    assert result.returncode == 0, result.stderr
    _, record = load_checkpoint(out)
    assert record["mixed"] is True and record["sampled"] is None


@pytest.mark.parametrize(
    "extra", [["--mixed", "--sampled", "1", "--method", "truncquant"], ["--mixed", "--method", "qat"]]
)
def test_train_mixed_refuses_what_it_cannot_do(extra, tmp_path, capsys):
    out = tmp_path / "never.pt"
    result = run_in_process(train.main, ["--scheme", "offset", "--epochs", "1", "--out", str(out), *extra], capsys)
    assert_one_line_error(result)
    assert "--mixed" in result.stderr and not out.exists()


@pytest.fixture(scope="module")
def controlled(trained, tmp_path_factory):
    """The session's digits model with controllers at budgets 2 and 3, trained briefly by the CLI."""
    from golden.model import save_checkpoint

    directory = tmp_path_factory.mktemp("controlled")
    save_checkpoint(trained("truncquant", "offset"), directory / "base.pt", {"epochs": 4})
    argv = [str(directory / "base.pt"), "--out", str(directory / "c.pt"), "--export", str(directory / "export")]
    argv += ["--budget", "2", "--budget", "3", "--candidates", "1,2,3", "--candidates", "2,3,4"]
    argv += ["--train-images", "640", "--calibration-images", "400", "--controller-bits", "3"]
    assert train_controller.main(argv) is None
    return directory


def test_trained_controllers_land_on_their_budget(controlled):
    model, record = load_checkpoint(controlled / "c.pt")
    export = load_export(controlled / "export")
    assert sorted(record["controllers"]) == ["controller_2", "controller_3"]
    assert [c.spec.candidates for c in model.controllers.values()] == [(1, 2, 3), (2, 3, 4)]
    codes = input_codes(digits_split().train_x[:400], export.act_bits)  # the calibration images
    for budget in (2.0, 3.0):
        controller = export.controller(budget)
        assert controller.k == 3 and controller.fixed == {"conv0": 8}
        _, ks = fast_dynamic_logits(export, codes, controller)
        ratio = float(image_bitops(export, controller, ks).double().mean()) / budget_bitops(export, budget)
        assert ratio == pytest.approx(record["controllers"][controller.name]["calibrated_bitops_ratio"])
        assert 0.95 <= ratio <= 1.0, f"budget {budget}: {ratio:.3f} x"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "9", "--candidates", "1,2"], "equivalent uniform k in 1..8"),
        (["--budget", "2", "--candidates", "1,9"], "1..8"),
        (["--budget", "2", "--budget", "3", "--candidates", "1,2", "--candidates", "1,2", "--candidates", "1"], "once"),
        (["--budget", "2", "--candidates", "1,2", "--reads", "fc3"], "not a GEMM layer with a ReLU output"),
        (["--budget", "1", "--candidates", "2,3"], "cannot be met"),
    ],
)
def test_train_controller_bad_input(controlled, extra, message, tmp_path, capsys):
    out = tmp_path / "never.pt"
    argv = [str(controlled / "base.pt"), "--out", str(out), "--export", str(tmp_path / "e"), "--train-images", "64"]
    result = run_in_process(train_controller.main, argv + extra, capsys)
    assert_one_line_error(result)
    assert message in result.stderr and not out.exists() and not (tmp_path / "e").exists()


def test_train_controller_refuses_an_export_path_that_is_not_its_own(controlled, tmp_path, capsys):
    out, mine = tmp_path / "never.pt", tmp_path / "notes.txt"
    mine.write_text("the user's")
    argv = [str(controlled / "base.pt"), "--out", str(out), "--export", str(mine), "--budget", "2"]
    result = run_in_process(train_controller.main, argv + ["--candidates", "1,2", "--train-images", "64"], capsys)
    assert_one_line_error(result)
    assert not out.exists() and mine.read_text() == "the user's"


def test_controller_spec_round_trips_through_a_dict():
    spec = ControllerSpec("controller_2_5", 2.5, "conv0", (1, 2), ("conv1", "fc3"), (("conv0", 8), ("conv2", 4)), 3)
    assert ControllerSpec.from_dict(spec.as_dict()) == spec
