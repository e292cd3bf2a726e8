"""`python -m hw.generate`: emit the engine's Verilog and a JSON manifest describing it.

`--program` emits the program engine instead (hw/program_engine.py: the GEMM engine inside an activation
scratchpad of `--act-kib` KiB, running whole networks as layer programs); its manifest adds a `program`
object naming the program format and version it runs and its limits. `--soc` (implies `--program`) emits the
program engine behind AXI4-Lite registers and an AXI4 master DMA (hw/soc.py), its manifest adds a `soc`
object (bus parameters, register map), and the register map is also written as a C header, a Python module
and a FuseSoC core (hw/soc_files.py).

The manifest is derived from the elaborated component's signature, not written by hand, so it cannot
drift from the Verilog: every port's name, width and direction, and the field layout of each stream
payload, are read off the same object that is converted.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from contract.cli import InputError, Parser, add_base_bits, atomic_dir, run_main
from contract.config import PRESETS, EngineConfig, PEKind, parse_array
from contract.numerics import CONTRACT_VERSION
from contract.paths import build_dir
from contract.program import PROGRAM_FORMAT, PROGRAM_VERSION, ProgramLimits
from contract.soc import BusParameters
from contract.versions import INTERFACE_VERSION, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, generator_version
from hw.engine import Engine
from hw.program_engine import ProgramEngine
from hw.soc import NestmacSoC
from hw.soc_files import (
    CORE_NAME,
    HEADER_NAME,
    MODULE_NAME,
    SOC_TOP_NAME,
    c_header,
    fusesoc_core,
    python_module,
    soc_manifest,
)

TOP_NAME = "nestmac_engine"
PROGRAM_TOP_NAME = "nestmac_program_engine"
DEFAULT_OUT = build_dir("gen")


@dataclass(frozen=True)
class Generated:
    verilog: Path
    manifest: Path
    seconds: float


def layout_fields(layout: data.Layout) -> list[dict]:
    """Fields of a payload layout with bit offsets, flattened (nested structs become dotted names)."""
    fields = []
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.Layout):
            fields += [
                dict(f, name=f"{name}.{f['name']}", offset=field.offset + f["offset"]) for f in layout_fields(shape)
            ]
        elif isinstance(shape, data.ArrayLayout):
            elem = Shape.cast(shape.elem_shape)
            fields.append(
                dict(
                    name=name,
                    offset=field.offset,
                    width=field.width,
                    array=dict(length=shape.length, elem_width=elem.width, elem_signed=elem.signed),
                )
            )
        else:
            cast = Shape.cast(shape)
            fields.append(dict(name=name, offset=field.offset, width=cast.width, signed=cast.signed))
    return fields


def describe_ports(signature: wiring.Signature) -> list[dict]:
    """Every Verilog port of the top (besides clk and rst): Amaranth names them by joining the path."""
    ports = []
    for path, member in signature.members.flatten():
        if not member.is_port:
            continue
        shape = member.shape
        port = dict(
            name="__".join(str(p) for p in path),
            direction="input" if member.flow == wiring.In else "output",
            width=Shape.cast(shape).width,
        )
        if isinstance(shape, data.Layout):
            port["fields"] = layout_fields(shape)
        ports.append(port)
    return ports


def manifest_for(
    cfg: EngineConfig, engine: wiring.Component, limits: ProgramLimits | None = None, top: str | None = None
) -> dict:
    program = {}
    if limits is not None:
        program = {
            "program": {
                "format": PROGRAM_FORMAT,
                "version": PROGRAM_VERSION,
                "scratchpad_kib": limits.words * cfg.rows * cfg.act_bits / 8 / 1024,
            }
            | limits.as_dict()
        }
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_FORMAT_VERSION,
        "interface_version": INTERFACE_VERSION,
        "generator": {"name": "nestmac", "version": generator_version()},
        "top": top or (TOP_NAME if limits is None else PROGRAM_TOP_NAME),
        "numerics_contract_version": CONTRACT_VERSION,
        "parameters": cfg.as_dict() | {"mult_bits": cfg.mult_bits, "shift_bits": cfg.shift_bits},
        "pe_count": cfg.pe_count,
        "peak_macs_per_cycle": cfg.pe_count,
        "clock": {"name": "clk", "edge": "rising"},
        "reset": {"name": "rst", "polarity": "active-high", "kind": "synchronous"},
        "ports": describe_ports(engine.signature),
        "memories": engine.memory_summary(),
    } | program


def program_engine(cfg: EngineConfig, limits: ProgramLimits) -> ProgramEngine:
    fields = limits.as_dict()
    return ProgramEngine(cfg, fields.pop("words"), **fields)


def generate(
    cfg: EngineConfig, out_dir: Path, limits: ProgramLimits | None = None, bus: BusParameters | None = None
) -> Generated:
    """Write <out_dir>/<top>.v and manifest.json, all or nothing: the GEMM engine, with `limits` the program
    engine, with `bus` too the SoC wrapper (and its header, Python module and FuseSoC core)."""
    start = time.perf_counter()
    top = TOP_NAME if limits is None else PROGRAM_TOP_NAME if bus is None else SOC_TOP_NAME
    # The output path is claimed first, so one the output policy refuses costs no elaboration.
    with atomic_dir(out_dir, "hw.generate", "verilog") as staging:
        if bus is not None:
            engine = NestmacSoC(cfg, limits, bus.bus_bytes, bus.burst, bus.address_bits)
        else:
            engine = Engine(cfg) if limits is None else program_engine(cfg, limits)
        text = verilog.convert(engine, name=top, emit_src=False)
        manifest = manifest_for(cfg, engine, limits, top)
        if bus is not None:
            manifest["soc"] = soc_manifest(engine)
            (staging / HEADER_NAME).write_text(c_header(manifest))
            (staging / MODULE_NAME).write_text(python_module(manifest))
            (staging / CORE_NAME).write_text(fusesoc_core(manifest, f"{top}.v"))
        (staging / f"{top}.v").write_text(text)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Generated(out_dir / f"{top}.v", out_dir / "manifest.json", time.perf_counter() - start)


def add_config_arguments(parser: Parser, max_m: int = 1024, *, show_bits_alias: bool = False) -> None:
    """The engine's generation parameters as flags; shared with eda.synth so both build the same engines."""
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="a named engine (contract.config.PRESETS): its array size and variant; any flag given as well wins "
        "(a preset's --pipelined or --fixed-precision stays on) "
        "(default: none, the flags alone)",
    )
    add_base_bits(parser, show_alias=show_bits_alias, default=8, help="base weight bits B (2..16)")
    parser.add_argument("--array", default="16x16", help="ROWSxCOLS of the PE array, e.g. 16x16")
    parser.add_argument("--act-bits", type=int, default=8, help="activation bits A (1..16)")
    parser.add_argument("--acc-bits", type=int, default=32, help="accumulator bits ACC (8..40)")
    parser.add_argument(
        "--max-m", type=int, default=max_m, help=f"accumulator depth: largest M per command (default {max_m})"
    )
    parser.add_argument("--max-k", type=int, default=4096, help="largest K per command")
    parser.add_argument("--max-n", type=int, default=4096, help="largest N per command")
    parser.add_argument(
        "--fixed-precision",
        action="store_true",
        help="build the fixed-precision baseline (k = B, j = A, twos only; no run-time "
        "precision logic) to measure what switchability costs",
    )
    parser.add_argument(
        "--digit-bits",
        type=int,
        default=None,
        help="D in {1, 2, 4, B}, dividing B: weight bits a PE multiplies per cycle; a command at precision k "
        "then takes ceil(k/D) cycles per activation row (default B: the bit-parallel PE)",
    )
    parser.add_argument(
        "--pipelined",
        action="store_true",
        help="FPGA clock rates: register each PE's multiplier inputs and product, the column sums and the "
        "accumulator's memory read (3 more cycles of latency bit-parallel, 2 digit-serial)",
    )


def preset_flags(name: str) -> dict:
    """A preset as the values of the engine flags that add_config_arguments defines."""
    fields = PRESETS[name]
    flags = {"array": f"{fields['rows']}x{fields['cols']}"}
    if "switchable" in fields:
        flags["fixed_precision"] = not fields["switchable"]
    flags.update({key: fields[key] for key in ("digit_bits", "pipelined") if key in fields})
    return flags


def parse_engine_args(parser: Parser, argv: list[str] | None):
    """Parse with the chosen preset's flags as the defaults, so a flag given explicitly wins in any order."""
    scan = Parser(prog=parser.prog, add_help=False)  # only --preset: other flags and missing ones are not its business
    scan.add_argument("--preset", choices=list(PRESETS))
    preset = scan.parse_known_args(argv)[0].preset
    if preset is not None:
        parser.set_defaults(**preset_flags(preset))
    return parser.parse_args(argv)


def config_from_args(args) -> EngineConfig:
    rows, cols = parse_array(args.array)
    return EngineConfig(
        rows=rows,
        cols=cols,
        base_bits=args.base_bits,
        act_bits=args.act_bits,
        acc_bits=args.acc_bits,
        max_m=args.max_m,
        max_k=args.max_k,
        max_n=args.max_n,
        switchable=not args.fixed_precision,
        digit_bits=args.digit_bits,
        pipelined=args.pipelined,
    )


def add_program_arguments(parser: Parser) -> None:
    """The program engine's own generation parameters (contract.program.ProgramLimits)."""
    defaults = ProgramLimits(1)
    parser.add_argument(
        "--program",
        action="store_true",
        help="build the program engine: the GEMM engine inside an activation scratchpad, running whole "
        "networks as layer programs (hw/program_engine.py)",
    )
    parser.add_argument("--act-kib", type=float, default=16.0, help="with --program: the scratchpad's KiB")
    for name, what in (
        ("max_size", "largest map height or width"),
        ("max_channels", "most channels of a map"),
        ("max_n_tiles", "most N-tiles of a layer"),
        ("max_operands", "most operands a fused add reads"),
    ):
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=getattr(defaults, name), help=f"with --program: the {what}")


def add_soc_arguments(parser: Parser) -> None:
    """The SoC wrapper's generation parameters (contract.soc.BusParameters)."""
    defaults = BusParameters()
    parser.add_argument(
        "--soc",
        action="store_true",
        help="build the program engine behind AXI4-Lite registers and an AXI4 master DMA (hw/soc.py; implies "
        "--program), with its register map as a C header, a Python module and a FuseSoC core",
    )
    parser.add_argument("--bus-bytes", type=int, default=defaults.bus_bytes, help="with --soc: AXI4 data bytes")
    parser.add_argument("--burst", type=int, default=defaults.burst, help="with --soc: the longest burst in words")
    parser.add_argument("--address-bits", type=int, default=defaults.address_bits, help="with --soc: AXI4 address bits")


def bus_from_args(args) -> BusParameters | None:
    return BusParameters(args.bus_bytes, args.burst, args.address_bits) if args.soc else None


def limits_from_args(args, cfg: EngineConfig) -> ProgramLimits | None:
    if not (args.program or getattr(args, "soc", False)):
        return None
    if not cfg.switchable:
        raise InputError(
            "--program needs the switchable engine (layer programs set k per layer): drop --fixed-precision"
        )
    fields = {name: getattr(args, name) for name in ("max_size", "max_channels", "max_n_tiles", "max_operands")}
    return ProgramLimits.from_kib(args.act_kib, cfg.rows, cfg.act_bits, **fields)


def parse_args(argv: list[str] | None) -> tuple[EngineConfig, ProgramLimits | None, Path, BusParameters | None]:
    parser = Parser(prog="python -m hw.generate", description=__doc__.splitlines()[0])
    add_config_arguments(parser, show_bits_alias=True)
    add_program_arguments(parser)
    add_soc_arguments(parser)
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parse_engine_args(parser, argv)
    cfg = config_from_args(args)
    return cfg, limits_from_args(args, cfg), args.out, bus_from_args(args)


def main(argv: list[str] | None = None) -> None:
    cfg, limits, out_dir, bus = parse_args(argv)
    result = generate(cfg, out_dir, limits, bus)
    precisions = {
        PEKind.FIXED: f"fixed precision k = {cfg.base_bits}, j = {cfg.act_bits} (twos)",
        PEKind.BIT_PARALLEL: f"every weight precision 1..{cfg.base_bits}",
        PEKind.DIGIT_SERIAL: f"k <= D = {cfg.digit_bits}, 1/ceil(k/D) of it above (digit-serial)",
    }[cfg.pe_kind]
    print(
        f"nestmac engine {cfg.rows}x{cfg.cols} {cfg.dataflow.value}, "
        f"B={cfg.base_bits} A={cfg.act_bits} ACC={cfg.acc_bits}: "
        f"{cfg.pe_count} PEs, peak {cfg.pe_count} MACs/cycle at {precisions}"
    )
    if limits is not None:
        print(
            f"  program engine: {limits.words} scratchpad words ({limits.words * cfg.rows * cfg.act_bits // 8} "
            f"bytes), maps up to {limits.max_size}x{limits.max_size}, {limits.max_channels} channels"
        )
    if bus is not None:
        print(
            f"  SoC wrapper: AXI4 master {8 * bus.bus_bytes}-bit, bursts of {bus.burst}, {bus.address_bits}-bit "
            f"addresses; register map in {HEADER_NAME}, {MODULE_NAME}, FuseSoC core {CORE_NAME}"
        )
    print(f"  verilog:  {result.verilog}")
    print(f"  manifest: {result.manifest}")
    print(f"  generated in {result.seconds:.1f} s")


if __name__ == "__main__":
    sys.exit(run_main(main))
