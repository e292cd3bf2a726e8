"""Reading and writing an export directory (model.json + model.npz, contract.model_format's docstring).

Separate from the format itself so that the dataclasses and their validation stay one page: everything read
from a file is checked here for what the dataclasses cannot check (keys, JSON types, array ranks and dtypes)
and then built into an `Export`, whose construction validates the rest. Writing goes through
contract.cli's output policy (atomic, never over a foreign directory).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from contract.cli import atomic_dir, read_json
from contract.datasets import DATASETS, PIXEL_MAX
from contract.model_format import (
    FORMAT,
    JSON_NAME,
    NPZ_NAME,
    POOL_OPS,
    READABLE_VERSIONS,
    Export,
    ExportedController,
    ExportedLayer,
    ExportError,
    GraphNode,
    Pooling,
    require,
)
from contract.numerics import CONTRACT_VERSION


def write_export(export: Export, directory, inputs=()) -> None:
    """Write model.json and model.npz atomically: `directory` is replaced only when both are complete, and only
    if it is new or an earlier export (contract.cli's output policy; never one of `inputs`)."""
    arrays = {}
    for layer in (*export.layers, *(controller.layer for controller in export.controllers)):
        arrays[f"{layer.name}.weight_codes"] = layer.weight_codes
        arrays.update({f"{layer.name}.{name}": getattr(layer, name) for name in ("bias", "mult", "shift")})
    with atomic_dir(directory, "golden.export", FORMAT, inputs) as tmp:
        (tmp / JSON_NAME).write_text(json.dumps(export.describe(), indent=1) + "\n")
        np.savez(tmp / NPZ_NAME, **arrays)


def _read_json(path: Path) -> dict:
    meta = read_json(path)
    require(isinstance(meta, dict), f"{path} must hold a JSON object")
    require(meta.get("format") == FORMAT, f"{path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    require(
        meta.get("format_version") in READABLE_VERSIONS,
        f"{path}: format version {meta.get('format_version')!r} is not one of {', '.join(map(str, READABLE_VERSIONS))}",
    )
    require(
        meta.get("numerics_contract") == CONTRACT_VERSION,
        f"{path}: numerics contract {meta.get('numerics_contract')!r} is not {CONTRACT_VERSION}",
    )
    for key in ("method", "scheme", "base_bits", "act_bits", "acc_bits", "layers"):
        require(key in meta, f"{path}: missing key {key!r}")
    require(
        isinstance(meta["layers"], list) and all(isinstance(e, dict) for e in meta["layers"]),
        f"{path}: 'layers' must be a list of objects",
    )
    return meta


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ExportError(f"{path} not found") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ExportError(f"{path} is not a readable npz archive ({type(exc).__name__})") from None


def _layer_from_files(entry: dict, arrays: dict[str, np.ndarray], where: Path) -> ExportedLayer:
    required = ("name", "kind", "in_shape", "out_shape", "mode") + (
        ("kernel", "stride", "padding") if entry.get("kind") == "conv" else ()
    )
    for key in required:
        require(key in entry, f"{where}: a layer is missing key {key!r}")
    name = entry["name"]
    require(isinstance(name, str) and name != "", f"{where}: layer names must be non-empty strings")
    require(
        all(isinstance(entry[key], list) for key in ("in_shape", "out_shape")),
        f"{where}: layer {name}: shapes must be lists",
    )
    found = {}
    for array in ("weight_codes", "bias", "mult", "shift"):
        key = f"{name}.{array}"
        require(key in arrays, f"{where.parent / NPZ_NAME}: missing array {key!r}")
        found[array] = arrays[key]
        # Rank and dtype before anything reads a shape: a 0-d or float array is a bad file, not a crash.
        require(
            found[array].ndim == 2 and found[array].dtype.kind in "iu",
            f"{where.parent / NPZ_NAME}: {key!r} must be a 2-D integer array, got {found[array].ndim}-D "
            f"{found[array].dtype}",
        )
    geometry = {key: _geometry_value(entry.get(key, default)) for key, default in (("dilation", 1), ("groups", 1))}
    layer = ExportedLayer(
        name,
        entry["kind"],
        tuple(entry["in_shape"]),
        tuple(entry["out_shape"]),
        *(_geometry_value(entry.get(key)) for key in ("kernel", "stride", "padding")),
        entry["mode"],
        **found,
        **geometry,
    )
    require(
        entry.get("K", layer.K) == layer.K and entry.get("N", layer.N) == layer.N,
        f"{where}: layer {name}: K and N disagree with the weight codes' shape",
    )
    return layer


def _geometry_value(value):
    """A layer's kernel, stride, padding or dilation as read: [height, width] becomes a pair (validated later)."""
    return tuple(value) if isinstance(value, list) else value


def load_export(directory) -> Export:
    """Read and validate an export directory; ExportError (one line) for anything wrong."""
    directory = Path(directory)
    require(directory.is_dir(), f"export directory not found: {directory}")
    meta = _read_json(directory / JSON_NAME)
    arrays = _read_npz(directory / NPZ_NAME)
    layers = tuple(_layer_from_files(entry, arrays, directory / JSON_NAME) for entry in meta["layers"])
    graph = _graph_from_json(meta, directory / JSON_NAME) if meta["format_version"] >= 2 else ()
    controllers = _controllers_from_files(meta, arrays, directory / JSON_NAME) if meta["format_version"] >= 3 else ()
    dataset = _dataset_from_json(meta, directory / JSON_NAME) if meta["format_version"] >= 4 else None
    return Export(
        meta["method"],
        meta["scheme"],
        meta["base_bits"],
        meta["act_bits"],
        meta["acc_bits"],
        layers,
        graph,
        controllers,
        dataset,
    )


def _dataset_from_json(meta: dict, where: Path) -> str | None:
    """The data set a version-4 export records, checked against the pixel scale it states beside it."""
    entry = meta.get("input")
    require(
        isinstance(entry, dict) and "dataset" in entry and "pixel_max" in entry,
        f"{where}: format version 4 needs an 'input' object with 'dataset' and 'pixel_max'",
    )
    dataset = entry["dataset"]
    require(
        dataset is None or dataset in DATASETS,
        f"{where}: unknown data set {dataset!r}; expected one of {', '.join(DATASETS)} or null",
    )
    expected = None if dataset is None else PIXEL_MAX[dataset]
    require(
        entry["pixel_max"] == expected and not isinstance(entry["pixel_max"], bool),
        f"{where}: pixel_max {entry['pixel_max']!r} is not {expected} (the scale of data set {dataset})",
    )
    return dataset


def _controllers_from_files(meta: dict, arrays: dict[str, np.ndarray], where: Path) -> tuple[ExportedController, ...]:
    entries = meta.get("controllers")
    require(isinstance(entries, list), f"{where}: format version 3 needs a 'controllers' list (it may be empty)")
    controllers = []
    for entry in entries:
        keys = ("name", "budget", "reads", "candidates", "controls", "fixed", "k", "layer")
        require(
            isinstance(entry, dict) and all(key in entry for key in keys),
            f"{where}: a controller needs the keys {', '.join(keys)}",
        )
        require(
            isinstance(entry["candidates"], list)
            and isinstance(entry["controls"], list)
            and isinstance(entry["fixed"], dict)
            and isinstance(entry["layer"], dict)
            and isinstance(entry["budget"], int | float)
            and not isinstance(entry["budget"], bool),
            f"{where}: controller {entry['name']!r}: candidates and controls must be lists, fixed and layer objects, "
            "budget a number",
        )
        layer = _layer_from_files(entry["layer"], arrays, where)
        controllers.append(
            ExportedController(
                entry["name"],
                float(entry["budget"]),
                entry["reads"],
                tuple(entry["candidates"]),
                tuple(entry["controls"]),
                dict(entry["fixed"]),
                entry["k"],
                layer,
            )
        )
    return tuple(controllers)


def _graph_from_json(meta: dict, where: Path) -> tuple[GraphNode, ...]:
    entries = meta.get("graph")
    require(isinstance(entries, list) and entries, f"{where}: format version 2 needs a non-empty 'graph' list")
    nodes = []
    for entry in entries:
        require(
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("op"), str)
            and isinstance(entry.get("inputs"), list)
            and all(isinstance(name, str) for name in entry["inputs"]),
            f"{where}: a graph node needs a string 'name' and 'op' and a list of string 'inputs'",
        )
        pooling = _pooling_from_json(entry, where) if entry["op"] in POOL_OPS else None
        relu = entry.get("relu", True)  # format version 6 names a linear add; every earlier add has its ReLU
        require(isinstance(relu, bool), f"{where}: graph node {entry['name']!r}: 'relu' must be true or false")
        nodes.append(GraphNode(entry["name"], entry["op"], tuple(entry["inputs"]), pooling, relu))
    return tuple(nodes)


def _pooling_from_json(entry: dict, where: Path) -> Pooling:
    """A pooling node's window (format version 5); its values are checked with the export."""
    keys = ("kernel", "stride", "padding", "dilation", "ceil_mode", "count_include_pad", "divisor_override")
    require(
        all(key in entry for key in keys) and all(isinstance(entry[key], list) for key in keys[:4]),
        f"{where}: pooling node {entry['name']!r} needs {', '.join(keys)} (the first four as [height, width])",
    )
    return Pooling(*(tuple(entry[key]) for key in keys[:4]), *(entry[key] for key in keys[4:]))
