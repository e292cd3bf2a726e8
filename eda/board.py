"""`python -m eda.board ulx3s-85f`: a bitstream of the engine (or, with `--soc`, the SoC wrapper around the
program engine) for a named ECP5 board, with the board's pin constraints.

The flow: the board top (eda/board_top.py) around the design as Verilog; `ecppll` configures the PLL for
`--freq`; Yosys `synth_ecp5`; `nextpnr-ecp5 --lpf` places and routes against the board's pins
(eda/boards.py, written out as `board.lpf`), timed at the PLL's output; `ecppack` packs the bitstream.
Everything lands in <out>/<tag>/ (report.json with resources, Fmax, the critical path and the bitstream's
size; `<tag>.bit`; every tool log) all or nothing. A bitstream is written whether or not timing is met at
`--freq`; `timing_met` in the report says which (a board run at a frequency it does not meet may
misbehave).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from amaranth.back import verilog

from contract.cli import InputError, Parser, atomic_dir, run_main
from contract.config import EngineConfig, engine_tag
from contract.paths import build_dir
from contract.program import ProgramLimits
from eda.board_top import BoardTop
from eda.boards import BOARDS, Board, lpf_text
from eda.dsp_registers import absorb_in_netlist
from eda.report import fpga_resources, nextpnr_critical_path, nextpnr_timing, nextpnr_utilisation, read_stat
from eda.runner import NEXTPNR_ECP5, YOSYS, run_tool
from eda.synth import Progress, program_tag
from eda.targets import DEFAULT_MAX_M, ECP5_CELLS, ecp5_classic_abc
from hw.engine import Engine
from hw.generate import (
    add_config_arguments,
    add_program_arguments,
    config_from_args,
    limits_from_args,
    parse_engine_args,
)
from hw.soc import NestmacSoC

DEFAULT_OUT = build_dir("board")
ECPPLL = "yowasp-ecppll"
ECPPACK = "yowasp-ecppack"
TOP_NAME = "board_top"
#: The ECP5 PLL's output range (EHXPLLL CLKOP, Lattice TN1263); ecppll finds the nearest it can make.
PLL_RANGE_MHZ = (3.125, 400.0)


def board_top(board: Board, cfg: EngineConfig, limits: ProgramLimits | None) -> BoardTop:
    """The board's top around the engine, or around the SoC wrapper when `limits` (the program engine's)
    are given."""
    design = Engine(cfg) if limits is None else NestmacSoC(cfg, limits)
    return BoardTop(design, board.clock.name, board.reset.name, len(board.leds))


def build_bitstream(
    board_name: str,
    cfg: EngineConfig,
    freq_mhz: float,
    limits: ProgramLimits | None = None,
    out_root: Path = DEFAULT_OUT,
    seed: int | None = None,
    emit=print,
) -> dict:
    """Build `board_name`'s bitstream of the engine `cfg` (the SoC wrapper with `limits`) clocked at
    `freq_mhz`; returns the report also written to <out_root>/<tag>/report.json."""
    if board_name not in BOARDS:
        raise InputError(f"unknown board {board_name!r}: choose from {', '.join(BOARDS)}")
    low, high = PLL_RANGE_MHZ
    if not low <= freq_mhz <= high:
        raise InputError(f"--freq must be within the PLL's {low:g}..{high:g} MHz, got {freq_mhz:g}")
    if seed is not None and not 0 <= seed < 1 << 31:
        raise InputError(f"--seed must be in 0..{(1 << 31) - 1}, got {seed}")
    board = BOARDS[board_name]
    design = "soc" if limits is not None else "engine"
    tag = f"{board_name}-{design}-{engine_tag(cfg)}{program_tag(limits)}-f{freq_mhz:g}" + (
        "" if seed is None else f"-s{seed}"
    )
    progress = Progress(tag, emit)
    start = time.perf_counter()
    with atomic_dir(Path(out_root) / tag, "eda.board", "bitstream") as work:
        (work / "top.v").write_text(verilog.convert(board_top(board, cfg, limits), name=TOP_NAME, emit_src=False))
        progress("generate: done")
        (work / "board.lpf").write_text(lpf_text(board))
        run_tool(ECPPLL, ["-i", f"{board.clock_mhz:g}", "-o", f"{freq_mhz:g}", "-f", "pll.v"], work, "ecppll", progress)
        # LUTs by classic ABC: Yosys 0.70's ABC9 step dies without a message on the board top of the pipelined
        # 4x4 engine, as it does on the 16x16 D = 2 engine out of context (docs/estimates.md).
        script = [
            "read_verilog top.v pll.v",
            *ecp5_classic_abc(TOP_NAME),
            "tee -q -o stat.json stat -json",
            "write_json netlist.json",
        ]
        (work / "board.ys").write_text("\n".join(script) + "\n")
        run_tool(YOSYS, ["-q", "board.ys"], work, "yosys", progress)
        absorbed = absorb_in_netlist(work / "netlist.json", TOP_NAME)
        args = [
            *board.nextpnr_args,
            "--json",
            "netlist.json",
            "--lpf",
            "board.lpf",
            "--textcfg",
            "board.config",
            "--report",
            "pnr.json",
            "--timing-allow-fail",
            "-q",
            *(["--seed", str(seed)] if seed is not None else []),
        ]
        run_tool(NEXTPNR_ECP5, args, work, "nextpnr", progress)
        bitstream = work / f"{tag}.bit"
        run_tool(ECPPACK, ["--compress", "board.config", bitstream.name], work, "ecppack", progress)
        pnr = json.loads((work / "pnr.json").read_text())
        fmax, constraint = nextpnr_timing(pnr)
        report = {
            "tag": tag,
            "board": board.name,
            "part": board.part,
            "design": design,
            "config": cfg.as_dict(),
            "clock_mhz": constraint,
            "fmax_mhz": round(fmax, 2),
            "timing_met": fmax >= constraint,
            "placement_seed": seed,
            "resources": fpga_resources(read_stat(work / "stat.json"), ECP5_CELLS),
            "dsp_output_registers": absorbed,
            "pnr_utilisation": nextpnr_utilisation(pnr),
            "critical_path": nextpnr_critical_path(pnr),
            "bitstream": bitstream.name,
            "bitstream_bytes": bitstream.stat().st_size,
            "seconds": round(time.perf_counter() - start, 1),
        }
        (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m eda.board", description=__doc__.splitlines()[0])
    parser.add_argument("board", help=f"the board: {', '.join(BOARDS)}")
    add_config_arguments(parser, max_m=DEFAULT_MAX_M)
    add_program_arguments(parser)
    parser.add_argument(
        "--soc", action="store_true", help="the SoC wrapper (hw/soc.py) around the program engine, not the engine"
    )
    parser.add_argument("--freq", type=float, required=True, help="the design's clock in MHz (the PLL's output)")
    parser.add_argument("--seed", type=int, help="nextpnr's placement seed (default: nextpnr's own)")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output root (default build/board)")
    args = parse_engine_args(parser, argv)
    if args.board not in BOARDS:  # before the engine's flags are checked: the first thing named is the board
        raise InputError(f"unknown board {args.board!r}: choose from {', '.join(BOARDS)}")
    cfg = config_from_args(args)
    if args.program and not args.soc:
        raise InputError("--program builds the program engine only inside the SoC wrapper here: add --soc")
    args.program = args.soc  # the SoC wrapper holds the program engine, built from the same limits flags
    limits = limits_from_args(args, cfg)
    report = build_bitstream(args.board, cfg, args.freq, limits, args.out, args.seed)
    path = report["critical_path"]
    print(
        f"{report['tag']}: {report['part']}, Fmax {report['fmax_mhz']} MHz at a {report['clock_mhz']:g} MHz clock "
        f"({'met' if report['timing_met'] else 'NOT met'}); critical path {path.get('ns')} ns: "
        f"{path.get('from')} -> {path.get('to')}"
    )
    print(f"bitstream: {args.out / report['tag'] / report['bitstream']} ({report['bitstream_bytes']:,} bytes)")


if __name__ == "__main__":
    sys.exit(run_main(main))
