"""`eda.board`'s cheap parts: the ULX3S 85F constraints against the board's published pinout, the top's
ports against its constraints, and bad input (one `error:` line, exit status 2, nothing written). The
bitstream itself takes minutes: `python -m eda.board ulx3s-85f ...` (docs/estimates.md, "Issue 25")."""

from __future__ import annotations

import re

import pytest
from amaranth.hdl import Fragment

from contract.cli import run_main
from contract.config import EngineConfig
from eda.board import main
from eda.board_top import BoardTop
from eda.boards import BOARDS, lpf_text
from hw.engine import Engine

TINY = EngineConfig(rows=2, cols=2, base_bits=4, act_bits=4, acc_bits=16, max_m=8, max_k=64, max_n=64)
ULX3S = BOARDS["ulx3s-85f"]
LOCATE = re.compile(r'^LOCATE COMP "([^"]+)" SITE "([A-Z]+[0-9]+)";$')


def located(lpf: str) -> dict[str, str]:
    pairs = [LOCATE.match(line).groups() for line in lpf.splitlines() if line.startswith("LOCATE")]
    assert len({name for name, _ in pairs}) == len(pairs), "a port located twice"
    return dict(pairs)


def test_ulx3s_pins_are_the_published_ones():
    """ulx3s_v20.lpf (github.com/emard/ulx3s): the 25 MHz clock on G2, FIRE1 on R1, led[0..7]."""
    lpf = lpf_text(ULX3S)
    sites = located(lpf)
    assert sites["clk_25mhz"] == "G2" and sites["btn_fire1"] == "R1"
    assert [sites[f"led[{i}]"] for i in range(8)] == ["B2", "C2", "C1", "D2", "D1", "E2", "E1", "H3"]
    assert 'FREQUENCY PORT "clk_25mhz" 25 MHZ;' in lpf.splitlines()
    assert len(set(sites.values())) == len(sites)
    assert ULX3S.part == "LFE5U-85F-6BG381C" and "--85k" in ULX3S.nextpnr_args


def test_top_elaborates_and_its_ports_are_exactly_the_constrained_pins():
    top = BoardTop(Engine(TINY), ULX3S.clock.name, ULX3S.reset.name, len(ULX3S.leds))
    Fragment.get(top, None)
    ports = []
    for path, member, _ in top.signature.flatten(top):
        name = path[0]
        ports += [name] if member.shape == 1 else [f"{name}[{i}]" for i in range(member.shape)]
    assert sorted(ports) == sorted(located(lpf_text(ULX3S)))


@pytest.mark.parametrize(
    "args,message",
    [
        (["zedboard", "--freq", "50"], "unknown board 'zedboard': choose from ulx3s-85f"),
        (["ulx3s-85f", "--freq", "500"], "--freq must be within the PLL's 3.125..400 MHz, got 500"),
        (["ulx3s-85f", "--freq", "50", "--seed", "-1"], "--seed must be in 0.."),
        (["ulx3s-85f", "--freq", "50", "--program"], "--program builds the program engine only inside the SoC"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    assert run_main(main, [*args, "--array", "2x2", "-o", str(tmp_path / "board")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "board").exists()
