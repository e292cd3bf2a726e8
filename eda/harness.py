"""A two-pin harness around the engine, for placing and timing it on a pin-limited FPGA (iCE40 UP5K).

Every engine input bit (reset included) is one stage of a shift register fed by pin `sin`, and every
output bit goes into a tree of 4-input XOR LUTs ending in a flip-flop on pin `sout`: nothing of the engine
can be optimised away, and the harness adds no path longer than the engine's own register-to-register
ones except the XOR tree (log4 of the output bits in LUT levels). The harness is written in the
device's primitives after the engine has been synthesised, so its cost is known exactly
(`HarnessCost`) rather than mixed into the engine's resource counts.
"""

from __future__ import annotations

from dataclasses import dataclass

HARNESS_TOP = "nestmac_harness"
XOR4_INIT = "16'h6996"


@dataclass(frozen=True)
class HarnessCost:
    flip_flops: int
    luts: int


def ice40_harness(ports: list[dict], engine_top: str) -> tuple[str, HarnessCost]:
    """Verilog of the harness around `engine_top`, whose ports (besides clk) are the manifest's `ports`
    plus the active-high reset `rst`; returns it with the primitives it adds."""
    inputs = [dict(name="rst", width=1)] + [p for p in ports if p["direction"] == "input"]
    outputs = [p for p in ports if p["direction"] == "output"]
    chain_bits = sum(p["width"] for p in inputs)
    out_bits = sum(p["width"] for p in outputs)
    lines = [
        f"module {HARNESS_TOP}(input clk, input sin, output sout);",
        f"  wire [{chain_bits}:0] chain;",
        "  assign chain[0] = sin;",
        f"  wire [{out_bits - 1}:0] outs;",
    ]
    lines += [f"  SB_DFF shift{i} (.C(clk), .D(chain[{i}]), .Q(chain[{i + 1}]));" for i in range(chain_bits)]
    connections, offset = [], 1
    for port in inputs:
        connections.append(f".{port['name']}(chain[{offset + port['width'] - 1}:{offset}])")
        offset += port["width"]
    offset = 0
    for port in outputs:
        connections.append(f".{port['name']}(outs[{offset + port['width'] - 1}:{offset}])")
        offset += port["width"]
    lines.append(f"  {engine_top} engine (.clk(clk), {', '.join(connections)});")
    level, luts, wires = [f"outs[{i}]" for i in range(out_bits)], 0, 0
    while len(level) > 1:
        next_level = []
        for start in range(0, len(level), 4):
            group = (level[start : start + 4] + ["1'b0"] * 3)[:4]
            name = f"x{wires}"
            wires += 1
            lines.append(f"  wire {name};")
            lines.append(
                f"  SB_LUT4 #(.LUT_INIT({XOR4_INIT})) lut_{name} (.O({name}), "
                + ", ".join(f".I{i}({bit})" for i, bit in enumerate(group))
                + ");"
            )
            next_level.append(name)
        luts += len(next_level)
        level = next_level
    lines.append(f"  SB_DFF out (.C(clk), .D({level[0]}), .Q(sout));")
    lines.append("endmodule")
    return "\n".join(lines) + "\n", HarnessCost(flip_flops=chain_bits + 1, luts=luts)
