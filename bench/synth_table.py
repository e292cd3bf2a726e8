"""Resources, Fmax, gate counts and the cost of precision switching for the configurations in
docs/estimates.md: every (target, array) point synthesised switchable and as the fixed-precision
baseline, then printed as tables. Points already in build/synth are reused unless --fresh.

    python bench/synth_table.py [--targets asic,ice40-up5k,ecp5-85k] [--arrays 4x4,16x16] [--jobs 2] [--fresh]
                                [--pipelined] [--digit-bits D] [--max-m M]

--pipelined builds the engines with EngineConfig.pipelined (the FPGA-timing registers); the Fmax column
then comes with the critical path's delay and its two ends. --digit-bits D builds digit-serial engines
only: the fixed-precision baseline is bit-parallel, so there is no switching-overhead table then.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

from contract.cli import CommandError, Parser, add_base_bits, run_main
from contract.config import EngineConfig, parse_array
from eda.report import format_table, switching_overhead
from eda.synth import DEFAULT_OUT, synthesize, tag_for
from eda.targets import DEFAULT_MAX_M

#: From this many PEs the FPGA runs keep every multiplier in DSP blocks (--dsp on) instead of retrying
#: with LUT multipliers (--dsp auto): Yosys's ABC9 mapping of hundreds of LUT multipliers takes the
#: better part of an hour in WebAssembly (4x4: 3.5 min), and these arrays exceed the DSP blocks anyway,
#: so the report says "does not fit" with the DSP count and the LUTs of everything else.
DSP_ONLY_FROM = 64


def point(target: str, cfg: EngineConfig, fresh: bool) -> dict:
    path = DEFAULT_OUT / tag_for(cfg, target) / "report.json"
    if path.exists() and not fresh:
        return json.loads(path.read_text())
    dsp = "on" if target != "asic" and cfg.pe_count >= DSP_ONLY_FROM else "auto"
    try:
        return synthesize(cfg, target, DEFAULT_OUT, dsp=dsp, emit=lambda line: print(line, flush=True))
    except CommandError as exc:
        return {"tag": tag_for(cfg, target), "error": str(exc)}


def main(argv=None) -> None:
    parser = Parser(prog="bench/synth_table.py", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="asic,ice40-up5k,ecp5-85k")
    parser.add_argument("--arrays", default="4x4,16x16")
    add_base_bits(parser, default=8, help="base weight bits B")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="re-run points that already have a report")
    parser.add_argument("--pipelined", action="store_true", help="engines with the FPGA-timing registers")
    parser.add_argument(
        "--digit-bits",
        type=int,
        help="digit-serial engines of D-bit digits, no fixed baseline (default: bit-parallel, with the fixed baseline)",
    )
    parser.add_argument("--max-m", type=int, default=DEFAULT_MAX_M, help="accumulator depth")
    args = parser.parse_args(argv)
    targets = args.targets.split(",")
    configs = []
    for text in args.arrays.split(","):
        rows, cols = parse_array(text)
        cfg = EngineConfig(
            rows=rows,
            cols=cols,
            base_bits=args.base_bits,
            max_m=args.max_m,
            pipelined=args.pipelined,
            digit_bits=args.digit_bits,
        )
        configs += [cfg] if cfg.digit_serial else [cfg, replace(cfg, switchable=False)]
    points = [(target, cfg) for cfg in configs for target in targets]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        reports = list(pool.map(point, *zip(*points, strict=True), [args.fresh] * len(points)))
    by_tag = {report["tag"]: report for report in reports}
    for target in targets:
        rows, overheads = [], []
        header = (
            [
                "array",
                "engine",
                "pe_array",
                "skew",
                "accumulators",
                "requant",
                "control",
                "NAND2-eq",
                "transistors",
                "mm2 (45 nm)",
            ]
            if target == "asic"
            else ["array", "engine", "LUT4", "FF", "carry", "DSP", "BRAM", "Fmax MHz", "critical path"]
        )
        for cfg in configs:
            report = by_tag[tag_for(cfg, target)]
            kind = ("switchable" if cfg.switchable else "fixed") + (
                f", D = {cfg.digit_bits}" if cfg.digit_serial else ""
            )
            array = f"{cfg.rows}x{cfg.cols}"
            if "error" in report:
                rows.append([array, kind, report["error"][:100]] + [""] * (len(header) - 3))
            elif target == "asic":
                blocks = report["gates"]["blocks"]
                rows.append(
                    [
                        array,
                        kind,
                        *(blocks[b]["nand2_eq"] for b in blocks),
                        report["gates"]["total_nand2_eq"],
                        report["gates"]["total_transistors"],
                        f"{report['area']['total_mm2']:.3f}",
                    ]
                )
            else:
                r = report["resources"]
                fmax = report["fmax_mhz"] if report["fits"] else f"does not fit ({report['fit_detail']})"
                path = report.get("critical_path") or {}
                ends = f"{path['ns']} ns: {path['from']} -> {path['to']}" if path else ""
                rows.append([array, kind, r["lut"], r["ff"], r["carry"], r["dsp"], r["bram"], fmax, ends])
            if not cfg.switchable:
                fixed, switchable = report, by_tag[tag_for(replace(cfg, switchable=True), target)]
                if "error" not in fixed and "error" not in switchable:
                    overhead = switching_overhead(switchable, fixed)
                    names = list(overhead)
                    overheads.append(
                        [array] + [f"{v['percent']}%" if v["percent"] is not None else "-" for v in overhead.values()]
                    )
        print(f"\n{target}")
        print(format_table(header, rows))
        if overheads:
            print(f"switching overhead on {target} (switchable vs fixed-precision baseline)")
            print(format_table(["array"] + names, overheads))


if __name__ == "__main__":
    sys.exit(run_main(main))
