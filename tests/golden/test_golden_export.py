"""The export files: a lossless, pickle-free round trip, requantization parameters as the contract
describes them, and a loader that rejects every malformed export with ExportError."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from contract.model_files import load_export, write_export
from contract.model_format import ExportError
from golden.data import digits_split, input_codes
from golden.export import build_export, quantize_multiplier
from golden.infer import run_integer


def test_round_trip_preserves_every_array_and_field(trained, export_dir):
    built = build_export(trained("truncquant", "offset"))
    loaded = load_export(export_dir)
    assert loaded.describe() == built.describe()
    for a, b in zip(built.layers, loaded.layers, strict=True):
        for name in ("weight_codes", "bias", "mult", "shift"):
            assert getattr(a, name).dtype == getattr(b, name).dtype
            assert np.array_equal(getattr(a, name), getattr(b, name)), f"{a.name}.{name}"
    codes = input_codes(digits_split().test_x[:32], built.act_bits)
    assert torch.equal(run_integer(built, codes, 3)[0], run_integer(loaded, codes, 3)[0])


def test_files_are_plain_json_and_pickle_free_npz(export_dir):
    meta = json.loads((export_dir / "model.json").read_text())
    with np.load(export_dir / "model.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert meta["numerics_contract"] == 1 and meta["acc_bits"] == 32
    assert meta["weight_precisions"] == list(range(meta["base_bits"], 0, -1))
    assert [layer["mode"] for layer in meta["layers"]] == ["relu"] * (len(meta["layers"]) - 1) + ["raw"]
    for layer in meta["layers"]:
        codes = arrays[f"{layer['name']}.weight_codes"]
        assert codes.dtype == np.uint16 and codes.shape == (layer["K"], layer["N"])
        assert int(codes.max()) < 2 ** meta["base_bits"]
        for name in ("bias", "mult", "shift"):
            assert arrays[f"{layer['name']}.{name}"].shape == (meta["base_bits"], layer["N"])


@pytest.mark.parametrize("real", [1e-5, 0.0123, -0.7, 1.0, 3.3, -1234.5, 30000.0])
def test_multiplier_is_the_finest_16_bit_fraction(real):
    mult, shift = quantize_multiplier(real, 32, "test")
    assert -32768 <= mult <= 32767 and 0 <= shift <= 46
    assert abs(mult / 2**shift - real) <= 2 ** -(shift + 1)  # rounded, not truncated
    assert shift == 46 or abs(round(real * 2 ** (shift + 1))) > 32767  # one more bit would not fit


def test_multiplier_too_large_for_16_bits_is_refused():
    with pytest.raises(ExportError, match="does not fit"):
        quantize_multiplier(40000.0, 32, "layer x")


def test_requant_parameters_reproduce_the_folded_batchnorm(trained):
    """bias / mult reproduce h and g of docs/numerics.md: (acc + bias) * mult / 2^shift ~ (g*acc*Sx*Sw + h)*(2^A-1)."""
    model = trained("truncquant", "offset")
    export = build_export(model)
    conv, exported = model.quant_layers[1], export.layers[1]
    for k in (8, 2):
        g, h = (t.numpy() for t in conv.folded_bn(k))
        bias, mult, shift = exported.requant(k)
        sw, levels = conv.weight_scale(k), 255
        acc = 1000.0
        expected = (g * acc * sw / levels + h) * levels
        got = (acc + bias) * mult / 2.0**shift
        assert np.allclose(got, expected, rtol=1e-3, atol=0.5 * np.abs(g) * sw + 1e-3), f"k={k}"


def _corrupt(export_dir, tmp_path, edit):
    """A copy of the export with `edit(json_dict, arrays_dict)` applied."""
    target = tmp_path / "edited"
    shutil.copytree(export_dir, target)
    meta = json.loads((target / "model.json").read_text())
    with np.load(target / "model.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    edit(meta, arrays)
    (target / "model.json").write_text(json.dumps(meta))
    np.savez(target / "model.npz", **arrays)
    return target


def _set(mapping, key, value):
    mapping[key] = value


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda m, a: _set(m, "numerics_contract", 2), "numerics contract"),
        (lambda m, a: _set(m, "format_version", 99), "format version"),
        (lambda m, a: m.pop("scheme"), "missing key 'scheme'"),
        (lambda m, a: _set(m, "scheme", "sign-magnitude"), "unknown scheme"),
        (lambda m, a: _set(m, "base_bits", 17), "base_bits"),
        (lambda m, a: m["layers"][0].pop("kernel"), "missing key 'kernel'"),
        (lambda m, a: _set(m["layers"][1], "stride", 1), "output size"),
        (lambda m, a: _set(m["layers"][0], "mode", "raw"), "only the last layer"),
        (lambda m, a: a.pop("conv1.mult"), "missing array 'conv1.mult'"),
        (lambda m, a: _set(a, "conv0.weight_codes", a["conv0.weight_codes"][:5]), "K and N disagree"),
        (
            lambda m, a: (_set(m["layers"][0], "K", 5), _set(a, "conv0.weight_codes", a["conv0.weight_codes"][:5])),
            "weight codes have shape",
        ),
        (lambda m, a: _set(a, "conv0.weight_codes", a["conv0.weight_codes"].astype(np.int32)), "uint16"),
        (lambda m, a: _set(a, "conv0.weight_codes", a["conv0.weight_codes"] | np.uint16(256)), "exceed 8 bits"),
        (lambda m, a: _set(a, "conv2.shift", a["conv2.shift"] + 60), "shift values"),
        (lambda m, a: _set(a, "fc3.bias", a["fc3.bias"][:3]), "bias must be an int64"),
        (lambda m, a: _set(m, "graph", m["graph"][::-1]), "in the order of 'layers'"),
        (lambda m, a: _set(m["graph"][1], "inputs", ["conv2"]), "does not run before it"),
        (lambda m, a: _set(m["graph"][1], "inputs", ["input"]), "does not match input's output"),
        (lambda m, a: m["graph"].insert(3, {"name": "sum", "op": "add", "inputs": ["conv2", "input"]}), "different"),
        (lambda m, a: m.pop("graph"), "needs a non-empty 'graph'"),
    ],
)
def test_loader_rejects_malformed_exports(export_dir, tmp_path, edit, message):
    with pytest.raises(ExportError, match=message):
        load_export(_corrupt(export_dir, tmp_path, edit))


def test_failed_export_leaves_the_previous_directory_untouched(trained, export_dir, tmp_path, monkeypatch):
    target = tmp_path / "out"
    shutil.copytree(export_dir, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError):
        write_export(build_export(trained("truncquant", "offset")), target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary directory left behind


def test_bias_out_of_accumulator_range_fails_clearly(trained):
    """A BatchNorm shift that needs a bias beyond 32 signed bits cannot be exported."""
    model = trained("truncquant", "offset")
    bn = model.quant_layers[0].bn_for(8)
    saved = bn.bias.detach().clone()
    try:
        with torch.no_grad():
            bn.bias[0] = 1e9
        with pytest.raises(ExportError, match="layer conv0, k = 8: bias .* does not fit 32 signed bits"):
            build_export(model)
    finally:
        with torch.no_grad():
            bn.bias.copy_(saved)


def test_format_version_1_exports_load_as_a_chain(export_dir, tmp_path):
    """An export written before the graph existed (no 'graph', format_version 1) runs as it always did."""

    def to_version_1(meta, arrays):
        meta["format_version"] = 1
        del meta["graph"], meta["host_ops"]

    current, old = load_export(export_dir), load_export(_corrupt(export_dir, tmp_path, to_version_1))
    assert [(n.name, n.op, n.inputs) for n in old.nodes] == [
        ("conv0", "gemm", ("input",)),
        ("conv1", "gemm", ("conv0",)),
        ("conv2", "gemm", ("conv1",)),
        ("fc3", "gemm", ("conv2",)),
    ]
    codes = input_codes(digits_split().test_x[:16], current.act_bits)
    assert torch.equal(run_integer(old, codes, 4)[0], run_integer(current, codes, 4)[0])
