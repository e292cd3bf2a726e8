"""ONNX in (golden.onnx_import): torch.onnx.export's file of a float model imports as a module computing what the
original does, converts, trains, exports; a model that does not map is refused with every node at once.

torch.onnx.export runs with dynamo=False (the TorchScript exporter): the default exporter of torch 2.13 needs
onnxscript, which is not installed. Hand-made graphs (refusals) are built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import apps.run
from contract.cli import InputError
from contract.model_files import load_export, write_export
from golden import convert as convert_command
from golden import export as export_command
from golden import train as train_command
from golden.convert import convert
from golden.data import Split
from golden.export import build_export
from golden.layers import QuantSpec
from golden.onnx_import import onnx_module
from golden.train import train
from tests import edge_models
from tests.golden.test_golden_cli import assert_one_line_error, run_in_process
from tests.rgb_data import rgb_set, write_image_folder


class SmallResNet(nn.Module):
    """conv-BN-ReLU, max pooling, a residual block, global average pooling and two Linear layers."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.block = edge_models.BasicBlock(8, 8, 1)
        self.head = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        x = self.block(self.pool(self.stem(x)))
        return self.head(x.mean((2, 3)))


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    """`model` in eval mode with BatchNorm statistics and affines away from the identity, so that folding
    them (or not) shows in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor in (module.weight.data, module.bias.data, module.running_mean):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model.eval()


class ViewNet(nn.Module):
    """x.view(x.size(0), -1): with a dynamic batch, the exporter computes the target from Shape and Gather."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Linear(4 * 8 * 8, 4)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


def _export(model: nn.Module, shape, path: Path, keep_batchnorm: bool = False, dynamic_batch: bool = False) -> Path:
    mode = torch.onnx.TrainingMode.PRESERVE if keep_batchnorm else torch.onnx.TrainingMode.EVAL
    axes = {"x": {0: "N"}} if dynamic_batch else None
    with pytest.warns(DeprecationWarning):  # the TorchScript exporter (module docstring)
        torch.onnx.export(
            model,
            (torch.zeros(1, *shape),),
            str(path),
            dynamo=False,
            training=mode,
            input_names=["x"],
            dynamic_axes=axes,
        )
    return path


@pytest.mark.parametrize(
    "make, shape, keep_batchnorm, dynamic_batch",
    [
        (SmallResNet, (3, 16, 16), False, False),  # the exporter folds BatchNorm into the conv bias
        (SmallResNet, (3, 16, 16), True, True),  # BatchNormalization nodes kept; a batch dimension "N"
        (edge_models.EdgeNet, (3, 16, 16), False, False),  # ReLU6, hardtanh, clamp as Clip; grouped, dilated convs
        (lambda: edge_models.ResNet18Like(width=4), (3, 32, 32), False, False),  # 7x7/2 stem, downsampling
        (ViewNet, (3, 16, 16), False, False),  # a Reshape to a constant [1, -1]
        (ViewNet, (3, 16, 16), False, True),  # a Reshape to sizes computed from x
        (edge_models.InceptionLike, (3, 8, 8), False, False),  # a Concat of two branches along channels
    ],
)
def test_an_exported_model_imports_as_the_same_float_function(tmp_path, make, shape, keep_batchnorm, dynamic_batch):
    torch.manual_seed(0)
    original = _randomised(make(), seed=1)
    imported = onnx_module(_export(original, shape, tmp_path / "model.onnx", keep_batchnorm, dynamic_batch), shape)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert float((imported(x) - original(x)).abs().max()) < 1e-5
    kinds = {type(module) for module in imported.modules()}
    assert (nn.BatchNorm2d in kinds) == keep_batchnorm and nn.Conv2d in kinds


@pytest.mark.parametrize(
    "make, ops, adds",
    [(edge_models.InceptionLike, {"gemm", "concat"}, []), (edge_models.LinearBottleneck, {"gemm", "add"}, [False])],
)
def test_a_concat_and_a_linear_bottleneck_convert_from_onnx(tmp_path, make, ops, adds):
    """`adds`: each add's relu (the linear bottleneck's add has none)."""
    torch.manual_seed(0)
    path = _export(_randomised(make(), seed=5), (3, 8, 8), tmp_path / "model.onnx")
    export = build_export(convert(onnx_module(path, (3, 8, 8)), QuantSpec("truncquant", "offset"), (3, 8, 8)).eval())
    assert {node.op for node in export.nodes} == ops
    assert [node.relu for node in export.nodes if node.op == "add"] == adds


def test_an_imported_model_converts_trains_one_step_and_exports(tmp_path):
    torch.manual_seed(0)
    path = _export(_randomised(SmallResNet(), seed=3), (3, 16, 16), tmp_path / "model.onnx", keep_batchnorm=True)
    x, y = rgb_set(32, seed=4)
    images = torch.from_numpy(x.astype("float32") / 255)
    split = Split(images, torch.from_numpy(y), images[:8], torch.from_numpy(y[:8]))
    spec = QuantSpec("truncquant", "offset")
    before = convert(onnx_module(path, (3, 16, 16)), spec, (3, 16, 16))
    model = train(spec, 1, 0, 2e-3, 32, lambda line: None, net=str(path), split=split, sampled=1)
    # The converted model starts from the ONNX weights (one step of Adam moves each by about the rate).
    step = (model.layers["block_conv1_Conv"].weight - before.layers["block_conv1_Conv"].weight).abs().max().detach()
    assert 0 < float(step) < 1e-2
    write_export(build_export(model), tmp_path / "export")
    loaded = load_export(tmp_path / "export")
    assert [layer.name for layer in loaded.layers] == [node.name for node in model.gemm_nodes]
    assert len(loaded.layers) == 1 + 2 + 2  # stem, the block's two convs, two Linear layers


@pytest.mark.train  # one epoch of nested training on 32 images, then the cycle model on 2 (about 15 s)
def test_an_onnx_model_trains_on_an_image_folder_from_the_command_line_and_runs(tmp_path, capsys):
    """Both halves of issue 24's user path: an ONNX model and RGB PNG folders, through golden.train,
    golden.export and apps.run (the cycle model), each from its command line."""
    path = _export(_randomised(SmallResNet(), seed=8), (3, 16, 16), tmp_path / "model.onnx")
    data = write_image_folder(tmp_path / "images", 40, seed=9)
    model, out = tmp_path / "m.pt", tmp_path / "export"
    argv = ["--method", "truncquant", "--scheme", "offset", "--net", str(path), "--data", "folder"]
    argv += ["--data-dir", str(data), "--epochs", "1", "--sampled", "1", "--out", str(model)]
    trained = run_in_process(train_command.main, argv, capsys)
    assert trained.returncode == 0, trained.stderr
    assert f"({path} on folder, truncquant/offset" in trained.stdout
    assert run_in_process(export_command.main, [str(model), "--out", str(out)], capsys).returncode == 0
    ran = run_in_process(
        apps.run.main, [str(out), "--data-dir", str(data), "--limit", "2", "-o", str(tmp_path / "run")], capsys
    )
    assert ran.returncode == 0, ran.stderr
    assert "folder, 2 test" in ran.stdout


def test_the_convert_command_reads_an_onnx_file(tmp_path, capsys):
    path = _export(_randomised(SmallResNet(), seed=5), (3, 16, 16), tmp_path / "model.onnx")
    result = run_in_process(convert_command.main, [str(path), "--input-shape", "3,16,16"], capsys)
    assert result.returncode == 0, result.stderr
    assert "5 GEMM layers on the engine, 1 host adds, 1 host poolings" in result.stdout
    assert "stem_stem_0_Conv" in result.stdout
    wrong = run_in_process(convert_command.main, [str(path), "--input-shape", "1,16,16"], capsys)
    assert_one_line_error(wrong)
    assert "takes inputs 3x16x16, not 1x16x16" in wrong.stderr


def _graph_file(path: Path, nodes, initializers=(), opsets=(("", 17),)) -> Path:
    """A 1x3x8x8 -> 1x4 graph of `nodes`, its input 'x' and output 'y'."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.asarray(array, np.float32), name) for name, array in initializers],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, v) for domain, v in opsets])
    onnx.save(model, str(path))
    return path


def test_every_node_that_does_not_map_is_listed_in_one_message(tmp_path):
    path = _graph_file(
        tmp_path / "bad.onnx",
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[0, 0, 1, 1]),
            helper.make_node("Sigmoid", ["c"], ["s"], name="act"),
            helper.make_node("GlobalAveragePool", ["s"], ["p"], name="gap"),
            helper.make_node("Flatten", ["p"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fw"], ["g"], name="fc", transB=1),
            helper.make_node("Softmax", ["g"], ["y"], name="probabilities"),
        ],
        [("w", np.ones((4, 3, 2, 2))), ("fw", np.ones((4, 4)))],
    )
    with pytest.raises(InputError) as raised:
        onnx_module(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: 3 ONNX node(s) do not convert: Conv conv (asymmetric pads [0, 0, 1, 1]); ")
    assert "Sigmoid act; Softmax probabilities (supported: Conv, " in message


def test_a_mapped_model_the_converter_refuses_is_refused_by_the_converter(tmp_path):
    """A Clip from -1 maps to torch.clamp; the converter's own check names it (a signed activation)."""
    path = _graph_file(
        tmp_path / "signed.onnx",
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
            helper.make_node("Clip", ["c", "lo", "hi"], ["h"], name="clip"),
            helper.make_node("Flatten", ["h"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1),
        ],
        [("w", np.ones((4, 3, 3, 3))), ("lo", -1.0), ("hi", 1.0), ("fw", np.ones((4, 144)))],
    )
    with pytest.raises(InputError, match=r"node .clip.: only a clamp to \[0, b\]"):
        convert(onnx_module(path), QuantSpec("truncquant", "offset"), (3, 8, 8))


def test_a_qonnx_model_is_refused_in_one_line(tmp_path):
    path = _graph_file(
        tmp_path / "brevitas.onnx",
        [
            helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], name="quant_in", domain="qonnx.custom_op.general"),
            helper.make_node("Relu", ["q"], ["y"], name="relu"),
        ],
        [("s", 0.1), ("z", 0.0), ("b", 8.0)],
        opsets=(("", 17), ("qonnx.custom_op.general", 1)),
    )
    with pytest.raises(InputError, match=r"is a QONNX quantized model \(1 Quant nodes, the first quant_in\)"):
        onnx_module(path)


def test_a_model_whose_output_is_no_function_of_its_input_is_refused(tmp_path):
    constant = numpy_helper.from_array(np.zeros((1, 4), np.float32))
    path = _graph_file(tmp_path / "constant.onnx", [helper.make_node("Constant", [], ["y"], name="c", value=constant)])
    with pytest.raises(InputError, match="the output 'y' is a constant or sizes"):
        onnx_module(path)


def test_a_file_that_is_no_onnx_model_is_one_error(tmp_path, capsys):
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07junk")
    result = run_in_process(convert_command.main, [str(tmp_path / "junk.onnx"), "--input-shape", "3,8,8"], capsys)
    assert_one_line_error(result)
    assert "not a valid ONNX model" in result.stderr
    missing = run_in_process(convert_command.main, [str(tmp_path / "none.onnx"), "--input-shape", "3,8,8"], capsys)
    assert "ONNX model not found" in missing.stderr


def test_matmul_plus_bias_and_a_reshape_import_as_a_linear_layer(tmp_path):
    """MatMul by a constant then Add of a constant is one Linear; a Reshape to [1, C] is a flatten (any batch)."""
    rng = np.random.default_rng(6)
    weight, bias = rng.standard_normal((3, 4)), rng.standard_normal(4)
    path = _graph_file(
        tmp_path / "matmul.onnx",
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"], name="gap"),
            helper.make_node("Reshape", ["p", "shape"], ["r"], name="reshape"),
            helper.make_node("MatMul", ["r", "w"], ["m"], name="matmul"),
            helper.make_node("Add", ["m", "b"], ["y"], name="bias"),
        ],
        [("w", weight), ("b", bias)],
    )
    model = onnx.load(str(path))  # the Reshape's target shape is an int64 constant
    model.graph.initializer.append(numpy_helper.from_array(np.array([1, 3], np.int64), "shape"))
    onnx.save(model, str(path))
    imported = onnx_module(path, (3, 8, 8))
    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    expected = x.mean((2, 3)).double().numpy() @ weight + bias
    assert np.allclose(imported(x).detach().numpy(), expected, atol=1e-5)
    assert [type(module) for module in imported.children()] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]
