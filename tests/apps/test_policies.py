"""Per-layer precision policies on the command line: golden.evaluate --bits-per-layer, apps.run --policy."""

import csv

import pytest

from apps.run import main as run_main_body
from contract.cli import InputError, run_main
from contract.model_files import load_export
from contract.numerics import NumericsError
from contract.policy import parse_policy
from golden.data import digits_split, input_codes
from golden.evaluate import main as evaluate_main
from golden.infer import run_integer

IMAGES = 40


def golden_accuracy(export, ks) -> float:
    """Through golden.lowering's im2col GEMMs (golden.infer), not the batched path apps.run scores with."""
    split = digits_split()
    logits, _ = run_integer(export, input_codes(split.test_x[:IMAGES], export.act_bits), ks)
    return int((logits.argmax(dim=1) == split.test_y[:IMAGES]).sum()) / IMAGES


def test_a_resolved_policy_holds_its_k_per_layer_and_one_label(export_dir):
    export = load_export(export_dir)
    uniform = parse_policy("uniform:3", export.base_bits).resolve(export)
    static = parse_policy("static:8,2,4,1", export.base_bits).resolve(export)
    assert (uniform.ks, uniform.controller, uniform.label) == ((3, 3, 3, 3), None, "3")
    assert (static.ks, static.controller, static.label) == ((8, 2, 4, 1), None, "8,2,4,1")
    with pytest.raises(NumericsError, match="3 entries for a network of 4"):
        parse_policy("static:8,2,4", export.base_bits).resolve(export)
    with pytest.raises(InputError, match="holds no controller"):
        parse_policy("dynamic", export.base_bits).resolve(export)


def test_static_and_uniform_policies_on_a_digit_serial_engine(export_dir, tmp_path):
    out = tmp_path / "run"
    argv = [str(export_dir), "--array", "4x4", "--digit-bits", "1", "--images", str(IMAGES), "--batch", "4"]
    policies = ["--policy", "uniform:8", "--policy", "static:8,2,8,2", "--policy", "uniform:2"]
    assert run_main(run_main_body, [*argv, *policies, "-o", str(out)]) == 0
    rows = {row["k"]: row for row in csv.DictReader(open(out / "results.csv"))}
    assert list(rows) == ["8", "8,2,8,2", "2"]
    export = load_export(export_dir)
    shapes = export.gemm_shapes()
    for label, ks in (("8", [8] * 4), ("8,2,8,2", [8, 2, 8, 2]), ("2", [2] * 4)):
        assert float(rows[label]["accuracy"]) == pytest.approx(golden_accuracy(export, ks), abs=1e-12)
        # BitOPs by hand: MACs x k x A per layer, A = 8.
        hand = sum(m * k_dim * n * k * 8 for (m, k_dim, n), k in zip(shapes, ks, strict=True))
        assert float(rows[label]["mbitops_per_inference"]) == pytest.approx(hand / 1e6)
    # On D = 1 a layer's cycles grow with its k: the mix lies strictly between its two uniform bounds.
    cycles = {label: float(row["cycles_per_inference"]) for label, row in rows.items()}
    assert cycles["2"] < cycles["8,2,8,2"] < cycles["8"]


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--policy", "static:8,4"], "2 entries for a network of 4"),
        (["--policy", "static:8,4,4,9"], "1..8"),
        (["--policy", "fastest"], "unknown policy"),
        (["--policy", "dynamic:3"], "holds no controller"),
        (["--bits", "8", "--policy", "uniform:8"], "not allowed with"),
    ],
)
def test_a_bad_policy_is_one_error_line_and_writes_nothing(export_dir, tmp_path, capsys, flags, says):
    out = tmp_path / "run"
    assert run_main(run_main_body, [str(export_dir), "--images", "4", *flags, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and says in err[0], err
    assert not out.exists()


def test_evaluate_scores_a_per_layer_allocation_in_both_paths(checkpoint_file, export_dir, capsys):
    assert evaluate_main([str(checkpoint_file), "--bits-per-layer", "8,2,8,2", "--limit", str(IMAGES)]) is None
    line = next(line for line in capsys.readouterr().out.splitlines() if line.split()[0] == "8,2,8,2")
    _, floats, ints, agreement = line.split()
    assert float(ints) == pytest.approx(100 * golden_accuracy(load_export(export_dir), [8, 2, 8, 2]), abs=0.05)
    assert float(agreement) >= 99.5 - 1e-9 and float(floats) > 0
