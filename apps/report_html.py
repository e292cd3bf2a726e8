"""The page `nestmac report` writes: one HTML document, styles and plots inline, the source figures embedded.

`render(data)` turns the report's data (apps.report.report_data: the run's results.json and layers.json and
any synthesis reports, as read) into the page. Every figure in a table cell carries the path of the JSON value it shows
(`data-key`, and `data-scale` when it is shown scaled, e.g. as a percentage), and the whole data is embedded
as `<script type="application/json" id="nestmac-data">`, so a reader (or a test) can check each shown
number against its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from apps.report_svg import grouped_bars, scatter

#: The id of the embedded JSON block.
DATA_ID = "nestmac-data"

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; } .note { color: #666; font-size: 0.9em; } figure { display: inline-block; margin: 0.5em; }
"""


@dataclass(frozen=True)
class Figure:
    """A number shown in a cell: the value, the path of its source in the embedded data, and a display scale."""

    value: float | int | None
    key: str
    scale: float = 1

    def html(self) -> str:
        if self.value is None:
            return '<td class="n">-</td>'
        scale = "" if self.scale == 1 else f' data-scale="{self.scale:g}"'
        return f'<td class="n" data-key="{escape(self.key)}"{scale}>{number(self.value * self.scale)}</td>'


def number(value: float | int) -> str:
    """Four significant digits, whole numbers from 1,000 up, with thousands separators."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def cell(item) -> str:
    return item.html() if isinstance(item, Figure) else f"<td>{escape(str(item))}</td>"


def table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(item) for item in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pairs(rows: list[tuple[str, object]]) -> str:
    """A two-column table of settings: name, value (text or Figure)."""
    return "<table>" + "".join(f"<tr><th>{escape(name)}</th>{cell(value)}</tr>" for name, value in rows) + "</table>"


def engine_kind(engine: dict) -> str:
    digits = engine.get("digit_bits")
    kind = "bit-parallel" if digits is None else f"digit-serial, D = {digits}"
    precision = "switchable precision" if engine.get("switchable", True) else "fixed precision"
    return f"{kind}, {precision}" + (", pipelined" if engine.get("pipelined") else "")


def configuration(data: dict) -> str:
    run, engine = data["run"], data["run"]["engine"]
    table_ = run["energy_table"]
    model = run.get("model") or {}
    devices = ", ".join(f"{s['target']} ({s['tag']})" for s in data["synth"]) or "none given (--synth)"
    return pairs(
        [
            ("export", run["export"]),
            ("model", f"{model['method']}/{model['scheme']}" if model else "not recorded"),
            ("data set", f"{run['data']}, {run['images']} test images"),
            ("engine", data["engine_tag"]),
            ("array", f"{engine['rows']}x{engine['cols']} ({engine['rows'] * engine['cols']} PEs)"),
            ("PE kind", engine_kind(engine)),
            ("base bits B (stored code)", Figure(engine["base_bits"], "run/engine/base_bits")),
            ("activation bits A", Figure(engine["act_bits"], "run/engine/act_bits")),
            ("digit bits D", Figure(engine.get("digit_bits", engine["base_bits"]), digit_key(engine))),
            ("accumulator bits", Figure(engine["acc_bits"], "run/engine/acc_bits")),
            ("accumulator depth (max M)", Figure(engine["max_m"], "run/engine/max_m")),
            ("images per pass (batch)", Figure(run["batch"], "run/batch")),
            ("clock (MHz)", Figure(run["clock_mhz"], "run/clock_mhz")),
            ("device", devices),
            ("energy table", f"{table_['name']} ({table_['technology']})"),
            ("energy table file", f"{table_['path']} (SHA-256 {table_['sha256'][:16]}...)"),
        ]
    )


def digit_key(engine: dict) -> str:
    return "run/engine/digit_bits" if "digit_bits" in engine else "run/engine/base_bits"


#: The per-policy columns: header, results.json field, display scale.
POLICY_COLUMNS = [
    ("accuracy %", "accuracy", 100),
    ("MBitOPs/inf", "mbitops_per_inference", 1),
    ("engine cycles/inf", "cycles_per_inference", 1),
    ("host cycles/inf", "host_cycles_per_inference", 1),
    ("MAC utilisation %", "mac_utilisation", 100),
    ("latency us", "latency_us", 1),
    ("us/inf", "us_per_inference", 1),
    ("engine nJ/inf", "energy_nj_per_inference", 1),
    ("host nJ/inf", "host_energy_nj_per_inference", 1),
    ("MAC/inf", "macs_per_inference", 1),
    ("GOPS", "gops", 1),
    ("TOPS/W", "tops_per_w", 1),
]


def policy_table(precisions: list[dict]) -> str:
    rows = [
        [p["k"]] + [Figure(p.get(field), f"run/precisions/{i}/{field}", scale) for _, field, scale in POLICY_COLUMNS]
        for i, p in enumerate(precisions)
    ]
    return table(["k (policy)"] + [header for header, _, _ in POLICY_COLUMNS], rows)


def keyed_table(precisions: list[dict], field: str, what: str) -> str:
    """One row per policy of a dict field (energy by part, bytes per stream), or a note if the run lacks it."""
    recorded = [(i, p) for i, p in enumerate(precisions) if p.get(field)]
    if not recorded:
        return f'<p class="note">{escape(what)}: not recorded by this run (results.json from an older apps.run).</p>'
    names = list(recorded[0][1][field])
    rows = [
        [p["k"]] + [Figure(p[field].get(name), f"run/precisions/{i}/{field}/{name}") for name in names]
        for i, p in recorded
    ]
    return table(["k (policy)"] + names, rows)


LAYER_COLUMNS = [
    ("commands/inf", "commands_per_inference"),
    ("cycles/inf", "cycles_per_inference"),
    ("MAC/inf", "macs_per_inference"),
    ("energy nJ/inf", "energy_nj_per_inference"),
]


def layer_table(index: int, label: str, layers: list[dict]) -> str:
    streams = list(layers[0]["bytes_per_inference"]) if layers else []
    rows = []
    for j, layer in enumerate(layers):
        key = f"layers/precisions/{index}/layers/{j}"
        rows.append(
            [layer["name"], "x".join(map(str, layer["gemm"]))]
            + [Figure(layer[field], f"{key}/{field}") for _, field in LAYER_COLUMNS]
            + [Figure(layer["mac_utilisation"], f"{key}/mac_utilisation", 100)]
            + [Figure(layer["bytes_per_inference"][s], f"{key}/bytes_per_inference/{s}") for s in streams]
        )
    headers = ["layer", "GEMM MxKxN"] + [h for h, _ in LAYER_COLUMNS] + ["MAC util %"] + [f"{s} B/inf" for s in streams]
    return f"<h3>k = {escape(label)}</h3>" + table(headers, rows)


def layers_section(doc: dict | None) -> str:
    """Per GEMM layer, from the run's layers.json: cycles per layer as bars, then a table per policy."""
    with_layers = [(i, p) for i, p in enumerate(doc["precisions"]) if p.get("layers")] if doc else []
    if not with_layers:
        return (
            '<p class="note">Per-layer figures: not recorded (a dynamic policy with several images per pass, or '
            "a run of an apps.run before layers.json).</p>"
        )
    # Every policy's layers (a dynamic one adds its controller's GEMM), in the order they first appear.
    names = list(dict.fromkeys(layer["name"] for _, p in with_layers for layer in p["layers"]))
    series = {}
    for _, p in with_layers:
        cycles = {layer["name"]: layer["cycles_per_inference"] for layer in p["layers"]}
        series[f"k={p['k']}"] = [cycles.get(name, 0) for name in names]
    parts = [figure(grouped_bars("Engine cycles per inference by layer", names, series, "engine cycles per inference"))]
    parts += [layer_table(i, p["k"], p["layers"]) for i, p in with_layers]
    return "".join(parts)


def figure(svg_text: str, caption: str = "") -> str:
    return f"<figure>{svg_text}" + (f"<figcaption>{escape(caption)}</figcaption>" if caption else "") + "</figure>"


def plots(precisions: list[dict]) -> str:
    accuracy = [100 * p["accuracy"] for p in precisions]
    energy = [
        (p["k"], p["energy_nj_per_inference"] + p["host_energy_nj_per_inference"], a)
        for p, a in zip(precisions, accuracy, strict=True)
    ]
    latency = [(p["k"], p["latency_us"], a) for p, a in zip(precisions, accuracy, strict=True)]
    return figure(
        scatter("Accuracy against energy", energy, "energy per inference, engine + host (nJ)", "accuracy (%)")
    ) + figure(scatter("Accuracy against latency", latency, "latency of an image (us)", "accuracy (%)"))


def synth_section(index: int, report: dict) -> str:
    key = f"synth/{index}"
    parts = [f"<h3>{escape(report['target'])}: {escape(report['tag'])}</h3>"]
    if "gates" in report:
        blocks = report["gates"]["blocks"]
        total = report["gates"]["total_nand2_eq"] or 1
        rows = [
            [
                name,
                Figure(b["nand2_eq"], f"{key}/gates/blocks/{name}/nand2_eq"),
                Figure(b["transistors"], f"{key}/gates/blocks/{name}/transistors"),
                f"{100 * b['nand2_eq'] / total:.1f}",
            ]
            for name, b in blocks.items()
        ]
        parts.append(table(["block", "NAND2 eq.", "transistors", "% of logic"], rows))
        area = report["area"]
        parts.append(
            pairs(
                [
                    ("node", area["node"]),
                    ("logic (um^2)", Figure(area["logic_um2"], f"{key}/area/logic_um2")),
                    ("accumulator SRAM (um^2)", Figure(area["memory_um2"], f"{key}/area/memory_um2")),
                    ("total (mm^2)", Figure(area["total_mm2"], f"{key}/area/total_mm2")),
                ]
            )
        )
        series = {"NAND2 eq.": [b["nand2_eq"] for b in blocks.values()]}
        parts.append(figure(grouped_bars("Area by block", list(blocks), series, "NAND2 equivalents")))
    if "resources" in report:
        capacity = report.get("capacity", {})
        rows = [
            [name, Figure(used, f"{key}/resources/{name}"), Figure(capacity.get(name), f"{key}/capacity/{name}")]
            for name, used in report["resources"].items()
        ]
        parts.append(table(["resource", "used", "on the device"], rows))
        path = report.get("critical_path") or {}
        parts.append(
            pairs(
                [
                    ("fits", report.get("fit_detail", "")),
                    ("Fmax (MHz)", Figure(report.get("fmax_mhz"), f"{key}/fmax_mhz")),
                    ("target (MHz)", Figure(report.get("target_mhz"), f"{key}/target_mhz")),
                    ("timing met", {True: "yes", False: "no"}.get(report.get("timing_met"), "-")),
                    (
                        "placement seed",
                        "nextpnr default" if report.get("placement_seed") is None else report["placement_seed"],
                    ),
                    ("critical path", f"{path['from']} -> {path['to']}, {path['ns']} ns" if path else "-"),
                ]
            )
        )
    return "".join(parts)


def embedded(data: dict) -> str:
    """The data as JSON that cannot end the script element early (every '<' escaped, still valid JSON)."""
    text = json.dumps(data, indent=1, sort_keys=True).replace("<", "\\u003c")
    return f'<script type="application/json" id="{DATA_ID}">{text}</script>'


def render(data: dict) -> str:
    run = data["run"]
    precisions = run["precisions"]
    title = f"nestmac report: {data['export_name']} on {data['engine_tag']}"
    synth = "".join(synth_section(i, report) for i, report in enumerate(data["synth"])) or (
        '<p class="note">No synthesis report given: area by block, Fmax and resources come from '
        "<code>nestmac synth</code> (pass its report.json with --synth).</p>"
    )
    sources = "".join(f"<li>{escape(path)}</li>" for path in [data["sources"]["run"], *data["sources"]["synth"]])
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"<h2>Configuration</h2>{configuration(data)}"
        f"<h2>Per k or policy</h2>{policy_table(precisions)}"
        '<p class="note">GOPS and TOPS/W count 2 ops per MAC, the engine\'s MACs over its own cycles at the clock '
        "above and over its own energy; host adds are left out of them.</p>"
        f"{plots(precisions)}"
        f"<h2>Engine energy by part (nJ per inference)</h2>{keyed_table(precisions, 'energy_nj_by_part', 'By part')}"
        f"<h2>Bytes per stream (per inference)</h2>{keyed_table(precisions, 'bytes_per_inference', 'By stream')}"
        f"<h2>Per layer</h2>{layers_section(data['layers'])}"
        f"<h2>Synthesis</h2>{synth}"
        f"<h2>Sources</h2><ul>{sources}</ul>{embedded(data)}</body></html>\n"
    )
