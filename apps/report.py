"""`python -m apps.report RUN_DIR`: one self-contained HTML page of a design point and a run, from results on disk.

Reads the results.json that apps.run wrote into RUN_DIR (configuration, accuracy, cycles, utilisation,
energy and GOPS per k or policy) and its layers.json (per layer cycles, energy and bytes per stream), and
with --synth the report.json of eda.synth for the same engine (area by block, or FPGA resources and Fmax);
runs nothing.
The page (apps.report_html) has tables, inline SVG plots and the source JSON embedded, and opens offline.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from apps.report_html import render
from contract.cli import InputError, Parser, atomic_file, read_json, run_main
from contract.config import EngineConfig, engine_tag
from contract.errors import NestmacError
from contract.paths import build_dir

TOOL = "nestmac report"
FORMAT = 1
#: Engine fields that make a design point: a synthesis report of an engine that differs in these is refused.
DESIGN_POINT = ("rows", "cols", "base_bits", "act_bits", "digit_bits")
#: Largest earlier report read back to tell whether it is ours.
MAX_REPORT_BYTES = 64 << 20


def parse_args(argv):
    parser = Parser(prog="python -m apps.report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "run", type=Path, metavar="RUN_DIR", help="output directory of apps.run (holds results.json and layers.json)"
    )
    parser.add_argument(
        "--synth",
        type=Path,
        action="append",
        default=[],
        metavar="SYNTH_JSON",
        help="report.json of eda.synth (or its directory) for the same engine; repeat for several targets "
        "(default: none, the page then has no area, Fmax or resources)",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        help="output HTML file (default: build/report/<RUN_DIR below build/run, or its name>[+SYNTH_TAGS].html; "
        "it refuses to replace the report of other inputs there)",
    )
    return parser.parse_args(argv)


# --- inputs ---------------------------------------------------------------------------------------------


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def need(mapping: dict, key: str, check, what: str, where: str):
    """mapping[key] if `check` accepts it, else InputError naming the file and the field."""
    if not isinstance(mapping, dict) or key not in mapping or not check(mapping[key]):
        raise InputError(f"{where}: {key} is missing or not {what}; is it a file the nestmac tools wrote?")
    return mapping[key]


def numbers(mapping: dict, keys, where: str, optional: bool = False) -> None:
    for key in keys:
        if optional and mapping.get(key) is None:
            continue
        need(mapping, key, is_number, "a number", where)


def number_map(value) -> bool:
    return isinstance(value, dict) and all(is_number(v) for v in value.values())


def engine_of(config: dict, where: str) -> EngineConfig:
    try:
        return EngineConfig(**config)
    except (TypeError, NestmacError) as exc:
        raise InputError(f"{where}: its engine is not a valid configuration ({exc})") from None


REQUIRED_POLICY_FIELDS = (
    "accuracy",
    "cycles_per_inference",
    "latency_us",
    "energy_nj_per_inference",
    "host_energy_nj_per_inference",
)
OPTIONAL_POLICY_FIELDS = (
    "mbitops_per_inference",
    "host_cycles_per_inference",
    "mac_utilisation",
    "us_per_inference",
    "macs_per_inference",
    "gops",
    "tops_per_w",
)
LAYER_FIELDS = (
    "commands_per_inference",
    "cycles_per_inference",
    "macs_per_inference",
    "mac_utilisation",
    "energy_nj_per_inference",
)


def check_policy(policy: dict, where: str) -> None:
    need(policy, "k", lambda v: isinstance(v, str), "text", where)
    numbers(policy, REQUIRED_POLICY_FIELDS, where)
    numbers(policy, OPTIONAL_POLICY_FIELDS, where, optional=True)
    for field in ("energy_nj_by_part", "bytes_per_inference"):
        if policy.get(field) is not None:
            need(policy, field, number_map, "an object of numbers", where)


def load_layers(run_dir: Path, run: dict) -> dict | None:
    """The layers.json of an apps.run output (per policy, per GEMM layer), checked against its results.json;
    None for a run written before apps.run wrote it."""
    path = run_dir / "layers.json"
    if not path.exists():
        return None
    doc, where = read_json(path), str(path)
    policies = need(doc, "precisions", lambda v: isinstance(v, list), "a list", where)
    labels = [policy.get("k") if isinstance(policy, dict) else None for policy in policies]
    if labels != [policy["k"] for policy in run["precisions"]]:
        raise InputError(f"{where} holds policies {labels}, its results.json others: files of two runs?")
    for policy in policies:
        if policy.get("layers") is not None:
            need(policy, "layers", lambda v: isinstance(v, list), "a list", where)
        for layer in policy.get("layers") or []:
            need(layer, "name", lambda v: isinstance(v, str), "text", f"{where}: a layer")
            need(layer, "gemm", lambda v: isinstance(v, list) and len(v) == 3, "[M, K, N]", f"{where}: a layer")
            numbers(layer, LAYER_FIELDS, f"{where}: layer {layer['name']}")
            need(layer, "bytes_per_inference", number_map, "an object of numbers", f"{where}: layer {layer['name']}")
    return doc


def load_run(run_dir: Path) -> dict:
    """The results.json of an apps.run output, checked field by field for what the page reads."""
    path = run_dir / "results.json"
    if not run_dir.is_dir() or not path.is_file():
        raise InputError(f"{run_dir} holds no results.json: pass an output directory of nestmac run")
    run = read_json(path)
    where = str(path)
    engine_of(need(run, "engine", lambda v: isinstance(v, dict), "an object", where), where)
    for key in ("export", "data"):
        need(run, key, lambda v: isinstance(v, str), "text", where)
    for key in ("images", "batch"):
        need(run, key, lambda v: type(v) is int and v > 0, "a positive integer", where)
    need(run, "clock_mhz", lambda v: is_number(v) and v > 0, "a positive number", where)
    table = need(run, "energy_table", lambda v: isinstance(v, dict), "an object", where)
    for key in ("name", "technology", "path", "sha256"):
        need(table, key, lambda v: isinstance(v, str), "text", f"{where}: energy_table")
    precisions = need(run, "precisions", lambda v: isinstance(v, list) and v, "a non-empty list", where)
    for policy in precisions:
        check_policy(policy, where)
    return run


def load_synth(given: Path, run_engine: EngineConfig) -> tuple[Path, dict]:
    """(path, report) of an eda.synth report.json (or the directory holding it), for the run's design point."""
    path = given / "report.json" if given.is_dir() else given
    report = read_json(path)
    where = str(path)
    for key in ("tag", "target"):
        need(report, key, lambda v: isinstance(v, str), "text", where)
    engine = engine_of(need(report, "config", lambda v: isinstance(v, dict), "an object", where), where)
    differ = [
        f"{name} {getattr(engine, name)} (run: {getattr(run_engine, name)})"
        for name in DESIGN_POINT
        if getattr(engine, name) != getattr(run_engine, name)
    ]
    if differ:
        raise InputError(f"{where} is another engine than the run's: {', '.join(differ)}")
    if "gates" in report:
        blocks = need(report["gates"], "blocks", lambda v: isinstance(v, dict), "an object", where)
        for name, block in blocks.items():
            numbers(block, ("nand2_eq", "transistors"), f"{where}: block {name}")
        numbers(report["gates"], ("total_nand2_eq",), where)
        area = need(report, "area", lambda v: isinstance(v, dict), "an object", where)
        numbers(area, ("logic_um2", "memory_um2", "total_mm2"), f"{where}: area")
    elif "resources" in report:
        need(report, "resources", number_map, "an object of numbers", where)
        need(report, "capacity", number_map, "an object of numbers", where)
        numbers(report, ("fmax_mhz", "target_mhz"), where, optional=True)
    else:
        raise InputError(f"{where} has neither gates (ASIC) nor resources (FPGA): not a report of nestmac synth")
    return path, report


# --- output ---------------------------------------------------------------------------------------------


def default_output(run_dir: Path, synth: list[dict]) -> Path:
    """build/report/ + the run's path below build/run (NAME/ENGINE/POLICIES) or its name, + the synthesis tags."""
    runs = build_dir("run").resolve()
    resolved = run_dir.resolve()
    relative = resolved.relative_to(runs) if resolved.is_relative_to(runs) else Path(resolved.name)
    name = "+".join([relative.name, *(report["tag"] for report in synth)])
    return build_dir("report", *relative.parent.parts, f"{name}.html")


DATA_BLOCK = re.compile(r'<script type="application/json" id="nestmac-data">(.*?)</script>', re.DOTALL)


def earlier_report(path: Path) -> dict | None:
    """The embedded data of an earlier page of this tool at `path`, or None if it is not one."""
    if path.stat().st_size > MAX_REPORT_BYTES:
        return None
    match = DATA_BLOCK.search(path.read_text(errors="replace"))
    try:
        data = json.loads(match.group(1)) if match else None
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("tool") == TOOL else None


def ours(sources: dict | None):
    """The claim test for the output path: an earlier page of this tool; at the default path, also of the same
    inputs (a page of another run there is refused, naming what differs, rather than lost)."""

    def test(path: Path) -> bool:
        earlier = earlier_report(path)
        if earlier is None:
            return False
        if sources is not None and earlier.get("sources") != sources:
            raise InputError(
                f"{path} is the report of other inputs ({json.dumps(earlier.get('sources'))}); pass -o to write "
                "this one elsewhere"
            )
        return True

    return test


def report_data(run_dir: Path, run: dict, layers: dict | None, synth: list[tuple[Path, dict]]) -> dict:
    """What the page shows and embeds: the sources as read, and the names the page is titled with."""
    return {
        "tool": TOOL,
        "format": FORMAT,
        "sources": {"run": str(run_dir.resolve()), "synth": [str(path.resolve()) for path, _ in synth]},
        "export_name": Path(run["export"]).name,
        "engine_tag": engine_tag(EngineConfig(**run["engine"])),
        "run": run,
        "layers": layers,
        "synth": [report for _, report in synth],
    }


def main(argv=None):
    args = parse_args(argv)
    run = load_run(args.run)
    layers = load_layers(args.run, run)
    engine = EngineConfig(**run["engine"])
    synth = [load_synth(given, engine) for given in args.synth]
    data = report_data(args.run, run, layers, synth)
    out = args.out or default_output(args.run, [report for _, report in synth])
    claim = ours(None if args.out else data["sources"])
    with atomic_file(out, claim, inputs=[args.run, *(path for path, _ in synth)]) as staging:
        staging.write_text(render(data))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
