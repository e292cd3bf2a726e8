"""The FPGA boards `python -m eda.board` builds a bitstream for: the device, and the pins the board top
uses with their LPF constraints (site, I/O standard, pull, drive), from the board makers' documentation.

ULX3S (Radiona, v2.x/v3.0.x) with the LFE5U-85F-6BG381C: the 25 MHz oscillator on G2, eight LEDs
(led[0..7] on B2, C2, C1, D2, D1, E2, E1, H3) and the FIRE1 button on R1 (active high, pulled down), as
the board's published constraint file `ulx3s_v20.lpf` (github.com/emard/ulx3s, doc/constraints) places them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    """One top-level port bit (`name` as nextpnr sees it, `led[3]` for a bus bit) on a package ball."""

    name: str
    site: str
    io_type: str = "LVCMOS33"
    pull: str = "NONE"  # NONE, UP or DOWN
    drive_ma: int | None = None  # outputs only


@dataclass(frozen=True)
class Board:
    name: str
    part: str  # the FPGA's full part number, for the report
    nextpnr_args: tuple[str, ...]  # device and package for nextpnr-ecp5
    clock: Pin
    clock_mhz: float
    reset: Pin  # a push button, high while pressed
    leds: tuple[Pin, ...]

    @property
    def pins(self) -> tuple[Pin, ...]:
        return (self.clock, self.reset, *self.leds)


ULX3S_LED_SITES = ("B2", "C2", "C1", "D2", "D1", "E2", "E1", "H3")

BOARDS: dict[str, Board] = {
    "ulx3s-85f": Board(
        name="ulx3s-85f",
        part="LFE5U-85F-6BG381C",
        nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6"),
        clock=Pin("clk_25mhz", "G2"),
        clock_mhz=25.0,
        reset=Pin("btn_fire1", "R1", pull="DOWN"),
        leds=tuple(Pin(f"led[{i}]", site, drive_ma=4) for i, site in enumerate(ULX3S_LED_SITES)),
    ),
}


def lpf_text(board: Board) -> str:
    """The board's pin constraints in Lattice's LPF, as nextpnr-ecp5 --lpf reads them."""
    lines = [f"# {board.name} ({board.part}): the pins of eda.board's top (eda/boards.py)"]
    for pin in board.pins:
        drive = "" if pin.drive_ma is None else f" DRIVE={pin.drive_ma}"
        lines += [
            f'LOCATE COMP "{pin.name}" SITE "{pin.site}";',
            f'IOBUF PORT "{pin.name}" PULLMODE={pin.pull} IO_TYPE={pin.io_type}{drive};',
        ]
    lines.append(f'FREQUENCY PORT "{board.clock.name}" {board.clock_mhz:g} MHZ;')
    return "\n".join(lines) + "\n"
