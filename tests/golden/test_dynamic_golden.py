"""Dynamic precision on the integer path (golden.dynamic): the controller's decision, the engine schedule, the
batched path against it and against per-image static runs, and the export's controllers on disk."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from contract.cli import InputError
from contract.model_files import load_export, write_export
from contract.model_format import ExportError
from contract.policy import bitops
from golden.data import digits_split, input_codes
from golden.dynamic import (
    attach_controller,
    budget_bitops,
    decide,
    fast_dynamic_logits,
    image_bitops,
    lower_dynamic,
    precisions,
)
from golden.export import build_export
from golden.fastpath import fast_logits, fast_values
from golden.infer import execute_golden, layer_gemms
from golden.layers import QuantSpec
from golden.model import QuantNet, load_checkpoint, save_checkpoint

SEED = 0


@pytest.fixture(scope="module")
def model(trained) -> QuantNet:
    """The session's digits model (a copy) with two untrained controllers, centred on training images."""
    original = trained("truncquant", "offset")
    copy = QuantNet(original.spec, original.input_shape, original.nodes)
    copy.load_state_dict(original.state_dict())
    images = digits_split().train_x[:256]
    attach_controller(copy, 2.0, (1, 2, 4), seed=SEED, k=6, images=images)
    attach_controller(copy, 3.0, (2, 3, 8), seed=SEED + 1, images=images)
    return copy


@pytest.fixture(scope="module")
def export(model):
    return build_export(model)


@pytest.fixture(scope="module")
def codes(export):
    return input_codes(digits_split().test_x[:96], export.act_bits)


def test_decide_takes_the_largest_output_per_layer_and_the_smaller_k_on_ties(export):
    controller = export.controller(2.0)  # candidates (1, 2, 4), controls conv1, conv2, fc3
    raw = torch.tensor(
        [
            [5, 9, 1, -3, -3, -4, 0, 7, 7],  # layer 0: 2; layer 1: tie 1/2 -> 1; layer 2: tie 2/4 -> 2
            [9, 9, 9, -1, 0, 1, 2**31 - 1, -(2**31), 0],  # all tie -> 1; 4; 1
        ]
    )
    assert decide(controller, raw).tolist() == [[2, 1, 2], [1, 4, 1]]
    with pytest.raises(ValueError, match="integers"):
        decide(controller, raw.double())
    with pytest.raises(ValueError, match=r"\[batch, 9\]"):
        decide(controller, raw[:, :6])


def test_precisions_fill_in_the_fixed_layers(export):
    controller = export.controller(2.0)
    ks = precisions(export, controller, torch.tensor([[1, 2, 4], [4, 4, 1]]))
    assert [layer.name for layer in export.layers] == ["conv0", "conv1", "conv2", "fc3"]
    assert ks.tolist() == [[8, 1, 2, 4], [8, 4, 4, 1]]


@pytest.mark.parametrize("budget", [2.0, 3.0])
def test_dynamic_run_is_each_image_run_statically_at_its_own_precisions(export, codes, budget):
    """The grouped schedule, against the plain per-image path at the k vector the controller chose for it."""
    controller = export.controller(budget)
    codes = codes[:32]  # each image alone is one pass of the network: 32 keep the test to a few seconds
    logits, ks = fast_dynamic_logits(export, codes, controller)
    assert ks.shape == (len(codes), len(export.layers))
    for i in range(len(codes)):
        alone = fast_logits(export, codes[i : i + 1], ks[i].tolist())
        assert torch.equal(logits[i : i + 1], alone), f"image {i}, ks {ks[i].tolist()}, seed {SEED}"
    assert len({tuple(row) for row in ks.tolist()}) > 3, "an untrained, centred controller should vary its choice"


@pytest.mark.parametrize("source", ["real", "random"])
def test_engine_schedule_equals_the_batched_path(export, codes, source):
    if source == "random":
        codes = torch.randint(0, 1 << export.act_bits, codes.shape, generator=torch.Generator().manual_seed(SEED))
    controller = export.controller(2.0)
    run = lower_dynamic(export, codes, controller, execute_golden)
    logits, ks = fast_dynamic_logits(export, codes, controller)
    assert torch.equal(run.logits, logits) and torch.equal(run.ks, ks), f"seed {SEED}"
    # Engine order: conv0 at its fixed k, the controller at its k, then each layer once per distinct k, ascending.
    assert [(r.gemm.layer, r.gemm.k) for r in run.runs[:2]] == [("conv0", 8), (controller.name, 6)]
    assert run.runs[1].gemm.mode == "raw" and run.runs[1].gemm.N == 9
    assert torch.equal(decide(controller, run.runs[1].output), ks[:, 1:])
    later = [(r.gemm.layer, r.gemm.k, rows) for r, rows in zip(run.runs[2:], run.images[2:], strict=True)]
    for index, name in enumerate(controller.controls, start=1):
        mine = [(k, rows) for layer, k, rows in later if layer == name]
        assert [k for k, _ in mine] == sorted(set(ks[:, index].tolist()))
        for k, rows in mine:
            assert torch.equal(rows, torch.nonzero(ks[:, index] == k).flatten())
    pixels = {r.gemm.layer: r.gemm.M // len(rows) for r, rows in zip(run.runs, run.images, strict=True)}
    assert pixels == {"conv0": 64, controller.name: 1, "conv1": 16, "conv2": 4, "fc3": 1}


def test_bitops_count_every_layer_at_its_k_and_the_controller(export, codes):
    controller = export.controller(3.0)
    _, ks = fast_dynamic_logits(export, codes, controller)
    per_image = image_bitops(export, controller, ks)
    own = bitops([(1, controller.layer.K, controller.layer.N)], [controller.k], export.act_bits)
    for i in (0, 5, 17):
        assert int(per_image[i]) == bitops(export.gemm_shapes(), ks[i].tolist(), export.act_bits) + own
    assert budget_bitops(export, 3.0) == bitops(export.gemm_shapes(), [3] * len(export.layers), export.act_bits)


def test_fast_values_keep_an_inner_layers_output_as_the_engines_gemm_gives_it(export, codes):
    """What a probe on the layer a controller reads sees (bench/adaptivity.py), from the pass that scores."""
    ks = [8, 3, 2, 5]
    logits, kept = fast_values(export, codes[:16], ks, ["conv1"])
    runs = {run.gemm.layer: run.output for run in layer_gemms(export, codes[:16], ks)}
    assert list(kept) == ["conv1"] and torch.equal(logits, runs["fc3"])
    value = kept["conv1"]  # NCHW codes; the GEMM's rows are (image, y, x), its columns the channels
    assert torch.equal(value.permute(0, 2, 3, 1).reshape(-1, value.shape[1]), runs["conv1"])
    with pytest.raises(InputError, match="no GEMM layer named nope"):
        fast_values(export, codes[:2], ks, ["conv1", "nope"])


def test_export_round_trip_keeps_the_controllers(export, codes, tmp_path):
    write_export(export, tmp_path / "e")
    loaded = load_export(tmp_path / "e")
    assert loaded.describe() == export.describe()
    meta = json.loads((tmp_path / "e" / "model.json").read_text())
    assert meta["format_version"] == 6
    assert [c["budget"] for c in meta["controllers"]] == [2.0, 3.0]
    assert meta["controllers"][0]["fixed"] == {"conv0": 8}
    for a, b in zip(export.controllers, loaded.controllers, strict=True):
        for name in ("weight_codes", "bias", "mult", "shift"):
            assert np.array_equal(getattr(a.layer, name), getattr(b.layer, name))
    for budget in (2.0, 3.0):
        mine = fast_dynamic_logits(export, codes, export.controller(budget))
        theirs = fast_dynamic_logits(loaded, codes, loaded.controller(budget))
        assert all(torch.equal(x, y) for x, y in zip(mine, theirs, strict=True))


def test_choosing_a_controller(export, trained):
    assert export.controller(3.0 + 1e-12).name == "controller_3"
    with pytest.raises(InputError, match="budgets 2, 3; choose one"):
        export.controller(None)
    with pytest.raises(InputError, match="no controller for budget 2.5; its budgets: 2, 3"):
        export.controller(2.5)
    with pytest.raises(InputError, match="EXPORT holds no controller"):
        build_export(trained("truncquant", "offset")).controller(None)


def test_a_version_2_export_still_loads_without_controllers(export_dir, tmp_path):
    old = tmp_path / "v2"
    shutil.copytree(export_dir, old)
    meta = json.loads((old / "model.json").read_text())
    meta["format_version"] = 2
    del meta["controllers"]
    (old / "model.json").write_text(json.dumps(meta))
    assert load_export(old).controllers == ()


def _edited(export, tmp_path, edit):
    target = tmp_path / "edited"
    write_export(export, target)
    meta = json.loads((target / "model.json").read_text())
    edit(meta["controllers"][0])
    (target / "model.json").write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(reads="fc3"), "not a layer with a ReLU output"),
        (lambda c: c.update(reads="nowhere"), "not a layer with a ReLU output"),
        (lambda c: c.update(controls=["conv2", "conv1", "fc3"]), "after conv0, in execution order"),
        (lambda c: c.update(controls=["conv1", "conv2"]), "controlled or fixed, exactly once"),
        (lambda c: c.update(fixed={"conv0": 8, "conv1": 8}), "controlled or fixed, exactly once"),
        (lambda c: c.update(candidates=[4, 2, 1]), "distinct and ascending"),
        (lambda c: c.update(candidates=[1, 2, 9]), "not an integer in 1..8"),
        (lambda c: c.update(k=0), "not an integer in 1..8"),
        (lambda c: c.update(budget=9), "budget 9.0 is not an equivalent uniform k"),
        (lambda c: c.update(budget="2"), "budget a number"),
        (lambda c: c.update(candidates=[1, 2]), "N = 9, expected"),
        (lambda c: c.pop("reads"), "needs the keys"),
        (lambda c: c["layer"].update(mode="relu"), "raw linear layer"),
    ],
)
def test_a_bad_controller_entry_is_refused(export, tmp_path, edit, message):
    with pytest.raises(ExportError, match=message):
        load_export(_edited(export, tmp_path, edit))


def test_a_controller_named_like_a_layer_is_refused(export):
    controller = export.controllers[0]
    clash = replace(controller, name="conv1", layer=replace(controller.layer, name="conv1"))
    with pytest.raises(ExportError, match="differ from the layers' names"):
        replace(export, controllers=(clash,))


def test_checkpoints_carry_controllers_and_old_ones_still_load(model, checkpoint_file, tmp_path, codes):
    save_checkpoint(model, tmp_path / "c.pt", {})
    loaded, _ = load_checkpoint(tmp_path / "c.pt")
    assert [c.spec for c in loaded.controllers.values()] == [c.spec for c in model.controllers.values()]
    assert build_export(loaded).describe() == build_export(model).describe()
    old = torch.load(checkpoint_file, weights_only=True) | {"version": 2}
    del old["controllers"]
    torch.save(old, tmp_path / "v2.pt")
    assert len(load_checkpoint(tmp_path / "v2.pt")[0].controllers) == 0


def test_attach_controller_refuses_what_does_not_fit(trained):
    spec = QuantSpec("truncquant", "offset")
    original = trained("truncquant", "offset")
    fresh = QuantNet(spec, original.input_shape, original.nodes)
    with pytest.raises(InputError, match="no GEMM layer named 'conv9'"):
        attach_controller(fresh, 2.0, (1, 2), reads="conv9")
    with pytest.raises(InputError, match="not a GEMM layer with a ReLU output"):
        attach_controller(fresh, 2.0, (1, 2), reads="fc3")
    with pytest.raises(InputError, match="weight precision k must be an integer in 1..8, got 9"):
        attach_controller(fresh, 2.0, (1, 9))
    attach_controller(fresh, 2.0, (1, 2))
    with pytest.raises(InputError, match="already has a controller"):
        attach_controller(fresh, 2.0, (1, 2))
