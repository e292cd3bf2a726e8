"""`python -m eda.synth`: what one engine configuration costs on an FPGA (resources, Fmax) or as an ASIC
(NAND2-equivalent gates per block, transistors, area at 45 nm).

The Verilog comes from `hw.generate.generate`, the very code path users run, so the numbers describe
the engine they get. Everything lands in <out>/<tag>/ (report.json, tool logs, netlists) all or nothing;
`--fixed-precision` builds the baseline that prices run-time precision switching (docs/estimates.md);
`--program [--act-kib KIB]` the program engine (hw/program_engine.py), its scratchpad costed as SRAM like the
accumulator and its gates by block of hw.program_engine.PROGRAM_BLOCK_ORDER; `--soc` (FPGA targets) the SoC
wrapper around it (hw/soc.py). `--lut-mapper abc` maps an ECP5 design's LUTs with classic ABC instead of
synth_ecp5's ABC9, which Yosys 0.70 dies in on the larger designs (eda.targets.ecp5_classic_abc).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from contract.cli import InputError, Parser, atomic_dir, one_line, run_main
from contract.config import EngineConfig, engine_tag
from contract.paths import build_dir
from contract.program import ProgramLimits
from contract.soc import BusParameters
from eda.dsp_registers import absorb_in_netlist
from eda.harness import HARNESS_TOP, HarnessCost, ice40_harness
from eda.report import (
    asic_area,
    format_table,
    fpga_resources,
    gate_counts,
    memory_estimate,
    nextpnr_critical_path,
    nextpnr_timing,
    nextpnr_utilisation,
    read_stat,
)
from eda.runner import YOSYS, run_tool
from eda.targets import DEFAULT_MAX_M, LUT_MAPPERS, TARGETS, AsicTarget, FpgaTarget
from hw.engine import BLOCK_ORDER, MEMORY_MODULES, engine_blocks
from hw.generate import (
    PROGRAM_TOP_NAME,
    TOP_NAME,
    add_config_arguments,
    add_program_arguments,
    add_soc_arguments,
    bus_from_args,
    config_from_args,
    generate,
    limits_from_args,
    parse_engine_args,
)
from hw.program_engine import (
    PROGRAM_BLOCK_ORDER,
    PROGRAM_MEMORY_MODULES,
    PROGRAM_OTHER_BLOCK,
    program_engine_blocks,
)

DEFAULT_OUT = build_dir("synth")
DSP_POLICIES = ("auto", "on", "off")
#: nextpnr errors that mean "the design is larger than the device", a result rather than a fault.
DOES_NOT_FIT = re.compile(
    r"no Bels remaining|Unable to (find a placement location|place cell)|"
    r"exceeds? (the )?(device|available)|more .* than (are )?available",
    re.IGNORECASE,
)


def asic_script(top: str, memory_modules: tuple[str, ...]) -> str:
    """The Yosys script of the ASIC flow: the memories in `memory_modules` (paths below `top`) stay memories,
    costed as SRAM macros; any other memory (the FIFOs') becomes flip-flops."""
    sram = " ".join(f"{top}.{path}/t:$mem_v2 %d" for path in memory_modules)
    return f"""\
read_verilog gen/{top}.v
hierarchy -check -top {top}
synth -top {top} -run begin:fine
memory_map t:$mem_v2 {sram}
opt -fast -full
techmap
opt -fast
dfflegalize -cell $_DFF_P_ 01
abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX
opt_clean
tee -q -o stat.json stat -json -tech cmos
"""


ASIC_SCRIPT = asic_script(TOP_NAME, MEMORY_MODULES)
PROGRAM_ASIC_SCRIPT = asic_script(PROGRAM_TOP_NAME, PROGRAM_MEMORY_MODULES)


def tag_for(
    cfg: EngineConfig,
    target: str,
    seed: int | None = None,
    limits: ProgramLimits | None = None,
    bus: BusParameters | None = None,
    lut_mapper: str = LUT_MAPPERS[0],
) -> str:
    """The report directory's name: every generation parameter that changes the netlist, so that two
    engines never overwrite each other's reports (a digit-serial engine carries -d<D>, a pipelined one -p;
    the bit-parallel tag is unchanged, so existing reports keep their names; a program engine carries
    -program-w<words> and each of its limits that is not the default, the SoC wrapper -soc and each of its
    bus parameters that is not the default), a LUT mapper other than ABC9 (-abc), and a placement seed
    other than nextpnr's own (-s<N>), so that a seed table keeps every seed's report."""
    mapper = "" if lut_mapper == LUT_MAPPERS[0] else f"-{lut_mapper}"
    return f"{target}-{engine_tag(cfg)}{program_tag(limits)}{soc_tag(bus)}{mapper}" + (
        "" if seed is None else f"-s{seed}"
    )


def program_tag(limits: ProgramLimits | None) -> str:
    """'' for the GEMM engine; for the program engine its scratchpad words and non-default limits, e.g.
    -program-w1024 or -program-w256-size16-operands1."""
    if limits is None:
        return ""
    return f"-program-w{limits.words}" + changed_fields(limits.as_dict(), ProgramLimits(limits.words).as_dict(), "max_")


def soc_tag(bus: BusParameters | None) -> str:
    """'' without the SoC wrapper; with it -soc and its non-default bus parameters, e.g. -soc-bus-bytes16."""
    if bus is None:
        return ""
    return "-soc" + changed_fields(vars(bus), vars(BusParameters()))


def changed_fields(values: dict, defaults: dict, prefix: str = "") -> str:
    """-<name><value> for each of `values` that differs from `defaults`, the name without `prefix` and with
    dashes for underscores: the part of a tag that tells non-default generation parameters apart."""
    return "".join(
        f"-{name.removeprefix(prefix).replace('_', '-')}{value}"
        for name, value in values.items()
        if value != defaults[name]
    )


class Progress:
    """One line per stage, with seconds since the run started, prefixed by what is being built."""

    def __init__(self, prefix: str, emit: Callable[[str], None] = print):
        self.prefix, self.emit, self.start = prefix, emit, time.perf_counter()

    def __call__(self, message: str) -> None:
        self.emit(f"[{time.perf_counter() - self.start:6.1f} s] {self.prefix}: {message}")


def synthesize(
    cfg: EngineConfig,
    target_name: str,
    out_root: Path = DEFAULT_OUT,
    dsp: str = "auto",
    freq_mhz: float | None = None,
    emit: Callable[[str], None] = print,
    pnr_timeout: float | None = None,
    seed: int | None = None,
    limits: ProgramLimits | None = None,
    bus: BusParameters | None = None,
    lut_mapper: str = LUT_MAPPERS[0],
) -> dict:
    """Build, synthesise (and for FPGAs place and route) one configuration; returns the report that is also
    written to <out_root>/<tag>/report.json. `seed` is nextpnr's placement seed (its default if None): Fmax
    varies with it by several percent, so a timing figure is worth reading beside other seeds'. With `limits`
    the program engine around the GEMM engine `cfg` is built instead, with `bus` too the SoC wrapper around
    that (FPGA targets only). `lut_mapper` (eda.targets.LUT_MAPPERS) is how an ECP5 design's LUTs are mapped."""
    if target_name not in TARGETS:
        raise InputError(f"unknown target {target_name!r}: choose from {', '.join(TARGETS)}")
    if dsp not in DSP_POLICIES:
        raise InputError(f"--dsp must be one of {', '.join(DSP_POLICIES)}, got {dsp!r}")
    for flag, value in (("--freq", freq_mhz), ("--pnr-timeout", pnr_timeout)):
        if value is not None and not 0 < value < math.inf:  # checked before the tools run, not after
            raise InputError(f"{flag} must be positive and finite, got {value:g}")
    if seed is not None and not 0 <= seed < 1 << 31:
        raise InputError(f"--seed must be in 0..{(1 << 31) - 1}, got {seed}")
    target = TARGETS[target_name]
    if lut_mapper not in LUT_MAPPERS:
        raise InputError(f"--lut-mapper must be one of {', '.join(LUT_MAPPERS)}, got {lut_mapper!r}")
    ecp5 = isinstance(target, FpgaTarget) and target.family == "ecp5"
    if lut_mapper != LUT_MAPPERS[0] and not ecp5:
        raise InputError(f"--lut-mapper {lut_mapper} is for the ECP5 targets, not {target_name}")
    if bus is not None and isinstance(target, AsicTarget):
        raise InputError("--soc is measured on the FPGA targets: the ASIC flow's blocks are the program engine's")
    if bus is not None and limits is None:
        raise InputError("the SoC wrapper holds the program engine: give its limits (--program's) with the bus")
    tag = tag_for(cfg, target_name, seed, limits, bus, lut_mapper)
    progress = Progress(tag, emit)
    start = time.perf_counter()
    # The flow's settings that the tag leaves out are recorded: a run at another timing target or DSP policy
    # refuses to replace this report instead of silently losing its figures.
    settings = {"dsp": dsp, "freq_mhz": freq_mhz, "pnr_timeout": pnr_timeout}
    with atomic_dir(Path(out_root) / tag, "eda.synth", "synth-run", run=settings) as work:
        generated = generate(cfg, work / "gen", limits, bus)
        progress(f"generate: done in {generated.seconds:.1f} s")
        manifest = json.loads(generated.manifest.read_text())
        report = {"tag": tag, "target": target_name, "config": cfg.as_dict()}
        if limits is not None:
            report["program"] = manifest["program"]
        if bus is not None:
            report["soc"] = vars(bus)
        if isinstance(target, AsicTarget):
            report |= asic_flow(cfg, work, manifest, progress)
        else:
            frequency = freq_mhz or target.freq_mhz
            report["lut_mapper"] = lut_mapper
            report |= fpga_flow(target, work, manifest, progress, dsp, frequency, pnr_timeout, seed, lut_mapper)
        report["seconds"] = round(time.perf_counter() - start, 1)
        (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def asic_flow(cfg: EngineConfig, work: Path, manifest: dict, progress: Progress) -> dict:
    """Gates per block of the engine's hierarchy (hw.engine.engine_blocks, or for the program engine
    hw.program_engine.program_engine_blocks), its memories costed as SRAM: the accumulator under `memory`,
    the program engine's scratchpad under `scratchpad_memory`."""
    program = "program" in manifest
    (work / "asic.ys").write_text(PROGRAM_ASIC_SCRIPT if program else ASIC_SCRIPT)
    run_tool(YOSYS, ["-q", "asic.ys"], work, "yosys", progress)
    stat = read_stat(work / "stat.json")
    if program:
        blocks = gate_counts(
            stat, PROGRAM_TOP_NAME, program_engine_blocks(cfg), PROGRAM_BLOCK_ORDER, PROGRAM_OTHER_BLOCK
        )
        memories = {"memory": "accumulator", "scratchpad_memory": "scratchpad"}
    else:
        blocks = gate_counts(stat, TOP_NAME, engine_blocks(cfg))
        memories = {"memory": "accumulator"}
    estimates = {key: memory_estimate(memory_bits(manifest, name)) for key, name in memories.items()}
    return {
        "gates": {
            "blocks": blocks,
            "total_nand2_eq": round(sum(b["nand2_eq"] for b in blocks.values()), 1),
            "total_transistors": sum(b["transistors"] for b in blocks.values()),
        },
        **estimates,
        "area": asic_area(blocks, *estimates.values()),
    }


def memory_bits(manifest: dict, name: str) -> int:
    """Bits of the manifest's memory `name` (accumulator, scratchpad)."""
    return sum(m["depth"] * m["width"] for m in manifest["memories"] if m["name"] == name)


def fpga_flow(
    target: FpgaTarget,
    work: Path,
    manifest: dict,
    progress: Progress,
    dsp: str,
    freq_mhz: float,
    pnr_timeout: float | None,
    seed: int | None = None,
    lut_mapper: str = LUT_MAPPERS[0],
) -> dict:
    use_dsp = dsp != "off"
    resources, harness = fpga_synth(target, work, manifest, progress, use_dsp, lut_mapper)
    dsp_note = f"DSP blocks {'used' if use_dsp else 'not used'} (--dsp {dsp})"
    if dsp == "auto" and resources["dsp"] > target.capacity["dsp"]:
        dsp_note = (
            f"{resources['dsp']} DSP blocks needed, {target.capacity['dsp']} on the device: "
            f"multipliers kept in LUTs (--dsp auto)"
        )
        progress(dsp_note)
        use_dsp = False
        resources, harness = fpga_synth(target, work, manifest, progress, use_dsp, lut_mapper)
    report = {
        "resources": resources,
        "capacity": target.capacity,
        "dsp": dsp_note,
        "utilisation_percent": {
            r: round(100 * needed / target.capacity[r], 1) for r, needed in needed_sites(target, resources).items()
        },
        "harness": None if harness is None else vars(harness),
        "notes": list(target.notes),
    }
    if target.family == "ecp5":  # the products into the DSP blocks' own output registers
        report["dsp_output_registers"] = absorb_in_netlist(work / "netlist.json", manifest["top"])
    detail = overflow(target, resources, harness)
    if detail:
        progress(f"does not fit ({detail}): place and route skipped")
        return report | {"fits": False, "fit_detail": detail, "fmax_mhz": None, "target_mhz": freq_mhz}
    args = [
        *target.device_args,
        "--json",
        "netlist.json",
        "--report",
        "pnr.json",
        "--freq",
        f"{freq_mhz:g}",
        "--timing-allow-fail",
        "-q",
        *(["--seed", str(seed)] if seed is not None else []),
    ]
    run = run_tool(target.nextpnr, args, work, "nextpnr", progress, timeout=pnr_timeout, check=False)
    if run.status != 0:
        errors = [line for line in run.text().splitlines() if "ERROR" in line]
        if errors and DOES_NOT_FIT.search(errors[0]):
            return report | {"fits": False, "fit_detail": one_line(errors[0]), "fmax_mhz": None, "target_mhz": freq_mhz}
        raise run.failure()
    pnr = json.loads((work / "pnr.json").read_text())
    fmax, constraint = nextpnr_timing(pnr)
    return report | {
        "fits": True,
        "fit_detail": "placed and routed",
        "fmax_mhz": round(fmax, 2),
        "target_mhz": constraint,
        "timing_met": fmax >= constraint,
        "placement_seed": seed,
        "pnr_utilisation": nextpnr_utilisation(pnr),
        "critical_path": nextpnr_critical_path(pnr),
    }


def needed_sites(target: FpgaTarget, resources: dict, harness: HarnessCost | None = None) -> dict[str, int]:
    """Device sites the engine (plus harness) occupies, per capacity entry: a carry cell takes LUT sites
    of its own on ECP5 (CCU2C = 2 LUT4s) but shares the LUT's logic cell on iCE40."""
    extra_ff, extra_lut = (harness.flip_flops, harness.luts) if harness else (0, 0)
    return {
        "lut": resources["lut"] + target.luts_per_carry * resources["carry"] + extra_lut,
        "ff": resources["ff"] + extra_ff,
        "dsp": resources["dsp"],
        "bram": resources["bram"],
    }


def overflow(target: FpgaTarget, resources: dict, harness: HarnessCost | None) -> str:
    """Which device resources the netlist plainly exceeds ('' if none): then placement cannot succeed."""
    needed = needed_sites(target, resources, harness)
    return ", ".join(
        f"{r}: {n:,} needed, {target.capacity[r]:,} available" for r, n in needed.items() if n > target.capacity[r]
    )


def fpga_synth(
    target: FpgaTarget, work: Path, manifest: dict, progress: Progress, use_dsp: bool, lut_mapper: str
) -> tuple[dict, HarnessCost | None]:
    """Synthesise the engine alone (its resources), then add the harness if the device needs one, and
    write the netlist nextpnr places."""
    flags = " ".join(target.dsp_on if use_dsp else target.dsp_off)
    top = manifest["top"]
    lines = [
        f"read_verilog gen/{top}.v",
        *target.synth_commands(top, flags, lut_mapper),
        "tee -q -o stat.json stat -json",
    ]
    harness = None
    if target.pin_limited:
        text, harness = ice40_harness(manifest["ports"], top)
        (work / "harness.v").write_text(text)
        lines += ["read_verilog harness.v", f"hierarchy -top {HARNESS_TOP}", "flatten", "opt_clean"]
    lines.append("write_json netlist.json")
    (work / "fpga.ys").write_text("\n".join(lines) + "\n")
    run_tool(YOSYS, ["-q", "fpga.ys"], work, "yosys" if use_dsp else "yosys-nodsp", progress)
    return fpga_resources(read_stat(work / "stat.json"), target.cells), harness


def print_report(report: dict) -> None:
    cfg, program = report["config"], report.get("program")
    print(
        f"{report['tag']}: {cfg['rows']}x{cfg['cols']} PEs, B={cfg['base_bits']} A={cfg['act_bits']} "
        f"ACC={cfg['acc_bits']}, accumulator {cfg['max_m']} rows, "
        f"{'switchable' if cfg['switchable'] else 'fixed-precision baseline'}"
        + ("" if program is None else f", program engine with a {program['words']}-word scratchpad")
        + ("" if "soc" not in report else ", behind the SoC wrapper (AXI4 master, AXI4-Lite registers)")
    )
    if "gates" in report:
        blocks, area = report["gates"]["blocks"], report["area"]
        rows = [
            [
                name,
                blocks[name]["nand2_eq"],
                blocks[name]["transistors"],
                round(blocks[name]["nand2_eq"] * area["nand2_um2"], 1),
            ]
            for name in (BLOCK_ORDER if program is None else PROGRAM_BLOCK_ORDER)
        ]
        rows.append(
            ["logic total", report["gates"]["total_nand2_eq"], report["gates"]["total_transistors"], area["logic_um2"]]
        )
        print(format_table(["block", "NAND2-eq", "transistors", "um2"], rows))
        for key, name in (("memory", "accumulator"), ("scratchpad_memory", "scratchpad")):
            if key in report:
                memory = report[key]
                print(
                    f"{name} memory: {memory['bits']:,} bits as {memory['counted_as']}: {memory['sram_um2']:,.0f} "
                    f"um2 ({memory['sram_um2_per_bit']} um2/bit; as flip-flops it would be "
                    f"{memory['as_flip_flops_nand2_eq']:,.0f} NAND2-eq)"
                )
        print(f"area at {area['node']}: {area['total_mm2']} mm2 (NAND2_X1 = {area['nand2_um2']} um2)")
        return
    needed = report["utilisation_percent"]
    rows = [
        [name, count, report["capacity"].get(name, "-"), f"{needed[name]}%" if name in needed else "-"]
        for name, count in report["resources"].items()
    ]
    print(format_table(["resource", "engine", "device", "use"], rows))
    print(report["dsp"])
    if not report["fits"]:
        print(f"DOES NOT FIT: {report['fit_detail']}")
    else:
        met = "met" if report["timing_met"] else "not met"
        print(f"Fmax {report['fmax_mhz']} MHz (target {report['target_mhz']:g} MHz, {met})")
        path = report.get("critical_path")
        if path:
            print(f"critical path {path['ns']} ns ({path['logic_ns']} logic): {path['from']} -> {path['to']}")
    for note in report["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m eda.synth", description=__doc__.splitlines()[0])
    add_config_arguments(parser, max_m=DEFAULT_MAX_M)
    add_program_arguments(parser)
    add_soc_arguments(parser)
    parser.add_argument("--target", required=True, choices=list(TARGETS), help="device or 'asic'")
    parser.add_argument(
        "--dsp",
        choices=DSP_POLICIES,
        default="auto",
        help="FPGA multipliers in DSP blocks: auto (if they fit), on, off",
    )
    parser.add_argument("--freq", type=float, help="FPGA placement timing target in MHz (default per target)")
    parser.add_argument(
        "--pnr-timeout", type=float, help="give up place and route after this many seconds (default: no limit)"
    )
    parser.add_argument("--seed", type=int, help="nextpnr's placement seed (default: nextpnr's own)")
    parser.add_argument(
        "--lut-mapper",
        choices=LUT_MAPPERS,
        default=LUT_MAPPERS[0],
        help="ECP5 LUT mapping: abc9 (synth_ecp5's own) or abc (classic ABC, for designs Yosys 0.70's ABC9 "
        "dies on: the SoC wrapper, the 16x16 program engine)",
    )
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output root (default build/synth)")
    args = parse_engine_args(parser, argv)
    cfg = config_from_args(args)
    report = synthesize(
        cfg,
        args.target,
        args.out,
        args.dsp,
        args.freq,
        pnr_timeout=args.pnr_timeout,
        seed=args.seed,
        limits=limits_from_args(args, cfg),
        bus=bus_from_args(args),
        lut_mapper=args.lut_mapper,
    )
    print_report(report)
    print(f"report: {args.out / report['tag'] / 'report.json'}")


if __name__ == "__main__":
    sys.exit(run_main(main))
