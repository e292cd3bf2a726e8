"""The devices `eda.synth` can target: how to synthesise and place for each, and what each device holds.

Capacities are the figures nextpnr's own utilisation report gives for the device (LUT/LC, flip-flops,
DSP multipliers, block RAMs). They let the flow say "does not fit" from the Yosys netlist alone when a
resource is plainly exceeded, instead of spending minutes in a placer that must fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eda.runner import NEXTPNR_ECP5, NEXTPNR_ICE40

#: Accumulator depth used unless --max-m is given: 256 rows keep the C x ACC-bit accumulator word one
#: block RAM deep on both FPGA families (SB_RAM40_4K 256 x 16, DP16KD 512 x 36) and is what the ASIC
#: memory estimate counts. A layer with more output pixels is split into several commands.
DEFAULT_MAX_M = 256


@dataclass(frozen=True)
class FpgaTarget:
    name: str
    family: str  # "ice40" or "ecp5": selects the Yosys command and the cell names
    nextpnr: str
    device_args: tuple[str, ...]
    freq_mhz: float  # the placer's timing target; the achieved Fmax is reported either way
    capacity: dict[str, int]  # resource -> available on the device
    cells: dict[str, str]  # Yosys cell type (prefix) -> resource it uses
    dsp_on: tuple[str, ...]  # synthesis flags that map multipliers to DSP blocks ...
    dsp_off: tuple[str, ...]  # ... and that keep them in LUTs
    pin_limited: bool  # no out-of-context mode: the engine's ports go through a serial harness
    luts_per_carry: int = 0  # LUT sites a carry cell takes besides the LUTs Yosys counts
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def synth_command(self) -> str:
        return f"synth_{self.family}"

    def synth_commands(self, top: str, flags: str, lut_mapper: str) -> list[str]:
        """The Yosys commands that synthesise `top` for this device with `flags`, mapping LUTs with
        `lut_mapper` (LUT_MAPPERS; `abc` only on ECP5)."""
        if lut_mapper == "abc":
            return ecp5_classic_abc(top, flags)
        return [" ".join([self.synth_command, "-top", top, *([flags] if flags else [])])]


#: How LUTs are mapped: `abc9`, the synthesis command's own step, or `abc`, classic ABC (ecp5_classic_abc).
LUT_MAPPERS = ("abc9", "abc")


def ecp5_classic_abc(top: str, flags: str = "") -> list[str]:
    """`synth_ecp5` in two parts with classic ABC's LUT mapping between them: synth_lattice's `map_luts` step
    with `abc -lut 4` in place of `abc9 -W 300`. Yosys 0.70's ABC9 step (which synth_ecp5 always runs: it has
    no -noabc9) dies, with no message or on its reintegration assertion, on the 16x16 D = 2 engine, the 16x16
    D = 1 program engine, the SoC wrapper and the board tops (docs/estimates.md). Classic ABC maps without
    ABC9's timing model of the cells around the logic (carry chains, DSP blocks, RAMs), so its LUT counts and
    Fmax are not comparable with ABC9's."""
    command = " ".join(["synth_ecp5", "-top", top, *([flags] if flags else [])])
    return [
        f"{command} -run :map_luts",
        "check -latchonly -assert",
        "techmap -map +/lattice/latches_map.v",
        "abc -lut 4",
        "clean",
        f"{command} -run map_cells:",
    ]


@dataclass(frozen=True)
class AsicTarget:
    name: str = "asic"


ICE40_CELLS = {
    "SB_LUT4": "lut",
    "SB_DFF": "ff",
    "SB_CARRY": "carry",
    "SB_MAC16": "dsp",
    "SB_RAM40_4K": "bram",
    "SB_SPRAM256KA": "spram",
}
ECP5_CELLS = {
    "LUT4": "lut",
    "TRELLIS_FF": "ff",
    "CCU2C": "carry",
    "MULT18X18D": "dsp",
    "ALU54B": "alu",
    "DP16KD": "bram",
    "TRELLIS_DPR16X4": "lutram",
    "PFUMX": "wide_mux",
    "L6MUX21": "wide_mux",
}


def _ecp5(name: str, size: str, luts: int, dsps: int, brams: int) -> FpgaTarget:
    return FpgaTarget(
        name=name,
        family="ecp5",
        nextpnr=NEXTPNR_ECP5,
        # Out of context: the engine is a core inside a larger design, and its ~1,700 port bits (16x16)
        # exceed any package; nextpnr then places no I/O buffers and keeps the clock off the global network.
        device_args=(f"--{size}", "--package", "CABGA381", "--out-of-context"),
        freq_mhz=100.0,
        capacity={"lut": luts, "ff": luts, "dsp": dsps, "bram": brams},
        cells=ECP5_CELLS,
        dsp_on=(),
        dsp_off=("-nodsp",),
        pin_limited=False,
        luts_per_carry=2,
        notes=("placed out of context (no I/O buffers, clock on local routing)",),
    )


TARGETS: dict[str, FpgaTarget | AsicTarget] = {
    "ice40-up5k": FpgaTarget(
        name="ice40-up5k",
        family="ice40",
        nextpnr=NEXTPNR_ICE40,
        device_args=("--up5k", "--package", "sg48"),
        freq_mhz=24.0,
        capacity={"lut": 5280, "ff": 5280, "dsp": 8, "bram": 30},
        cells=ICE40_CELLS,
        dsp_on=("-dsp",),
        dsp_off=(),
        pin_limited=True,
        notes=(
            "nextpnr-ice40 has no out-of-context mode and the sg48 package has 39 I/O pins: placed and "
            "timed inside a harness that shifts every engine input in through one pin and XORs every "
            "output into one; resources are the engine's alone",
        ),
    ),
    "ecp5-25k": _ecp5("ecp5-25k", "25k", 24288, 28, 56),
    "ecp5-85k": _ecp5("ecp5-85k", "85k", 83640, 156, 208),
    "asic": AsicTarget(),
}
