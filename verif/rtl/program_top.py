"""The program engine's Verilog (hw/program_engine.py) and the stream-player top that runs it inside the HDL.

`program_verilog` is the one place that converts a ProgramEngine to Verilog for the benches. The top,
`nestmac_program_players`, is the GEMM engine's player top (verif.rtl.player_top) around the program engine:
a player per input stream (`step`, `image`, `weight`, `param`) offering the beats of a memory loaded with
`$readmemh` under a seeded xorshift pause generator, and a capture of `logits` (the player top's `result`
capture: `ready` from its own generator, each beat and its cycle, a handshake checker). The `step`, `weight`
and `param` players offer their memory `laps` times over, once per image: a batch of images is one copy of
the program and every image's words. The cycle of every `step` transfer is kept, so each step's cycles can be
compared with sim.program_cycles. Python touches the simulator only per batch (verif/rtl/players_tb.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from amaranth.back import verilog
from amaranth.lib import data
from amaranth.utils import ceil_log2

from contract.config import EngineConfig
from hw.generate import describe_ports
from hw.program_engine import ProgramEngine, step_layout
from verif.configs import NETWORK, config_id
from verif.rtl.player_top import address_bits, capture, closing, loads, opening, player, stopping

PROGRAM_TOP = "nestmac_program"
PROGRAM_PLAYERS = "nestmac_program_players"
#: The program engine's input streams, each with a player; its `logits` goes to the capture (`result` there).
INPUTS = ("step", "image", "weight", "param")
#: The words of players/ctl.hex, in order: per input, beats per lap and laps; the logits beats expected; the
#: pause thresholds and seeds (as verif.rtl.player_top's); the cycle budget and the drain after the last beat.
CONTROL = (
    *(f"count_{s}" for s in (*INPUTS, "result")),
    *(f"laps_{s}" for s in INPUTS),
    *(f"threshold_{s}" for s in (*INPUTS, "result")),
    *(f"seed_{s}" for s in (*INPUTS, "result")),
    "budget",
    "drain",
)
#: The words of players/status.hex, written when the run stops.
STATUS = ("results", *(f"taken_{s}" for s in INPUTS), "violations", "error", "timeout", "cycles")


@dataclass(frozen=True)
class ProgramEngineSpec:
    """A program engine to build: the GEMM engine's configuration, the scratchpad's words and the layer limits
    (hw.program_engine.ProgramEngine's parameters)."""

    cfg: EngineConfig
    depth: int
    max_size: int = 64
    max_channels: int = 1024
    max_n_tiles: int = 64
    max_operands: int = 2

    def component(self) -> ProgramEngine:
        limits = dict(max_size=self.max_size, max_channels=self.max_channels, max_n_tiles=self.max_n_tiles)
        return ProgramEngine(self.cfg, self.depth, **limits, max_operands=self.max_operands)

    def step_layout(self) -> data.StructLayout:
        """The payload layout of the engine's `step` port."""
        limits = dict(max_size=self.max_size, max_channels=self.max_channels, max_operands=self.max_operands)
        return step_layout(self.cfg, ceil_log2(self.depth), **limits)

    @property
    def name(self) -> str:
        """The build directory's name: every parameter (no '=', which make would read as an assignment)."""
        limits = f"s{self.max_size}c{self.max_channels}t{self.max_n_tiles}o{self.max_operands}"
        return f"program-{config_id(self.cfg).replace('=', '')}-w{self.depth}-{limits}"


@dataclass(frozen=True)
class ProgramDepths:
    """Beats each player memory holds (`step`, `weight`, `param`: one image's; `image`: the whole batch's),
    logits beats the capture keeps, and step transfers whose cycles are kept."""

    step: int = 1 << 8
    image: int = 1 << 17
    weight: int = 1 << 15
    param: int = 1 << 8
    result: int = 1 << 12
    step_cycle: int = 1 << 14

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def program_verilog(spec: ProgramEngineSpec) -> tuple[str, dict[str, int]]:
    """The Verilog of the program engine (module `nestmac_program`) and the width of each of its ports."""
    engine = spec.component()
    text = verilog.convert(engine, name=PROGRAM_TOP, emit_src=False)
    return text, {port["name"]: port["width"] for port in describe_ports(engine.signature)}


def program_player_verilog(widths: dict[str, int], depths: ProgramDepths, clock_period_ns: int) -> str:
    """The player top around `nestmac_program`, whose ports have `widths` (program_verilog's)."""
    sizes = depths.as_dict()
    players = "".join(player(s, widths[f"{s}__payload"], sizes[s], CONTROL, lapped=True) for s in INPUTS)
    connections = [f"    .{s}__{signal}({s}_{signal})" for s in INPUTS for signal in ("valid", "ready", "payload")]
    connections += [f"    .logits__{signal}(result_{signal})" for signal in ("valid", "ready", "payload")]
    connections = ",\n".join(connections)
    kept = depths.step_cycle
    status = [
        "results",
        *(f"{s}_taken" for s in INPUTS),
        "violations",
        "{31'd0, engine_error}",
        "{31'd0, timeout}",
        "cycle",
    ]
    origin = "verif.rtl.program_top: stream players around the program engine"
    return f"""{opening(origin, PROGRAM_PLAYERS, len(CONTROL), clock_period_ns)}
  reg [31:0] cycle, drained;
  reg timeout;
  wire hold = reset | done;
  wire engine_error;

  always @(posedge load) begin
    $readmemh("players/ctl.hex", ctl);
{loads(INPUTS, CONTROL)}
  end
{players}{capture(widths["logits__payload"], depths.result, CONTROL)}
  // The cycle of every step transfer (the first `step_cycle` of them).
  reg [31:0] step_cycle [0:{kept - 1}];
  always @(posedge clk)
    if (!hold && step_take && step_taken < {kept}) step_cycle[step_taken[{address_bits(kept) - 1}:0]] <= cycle;
  wire [31:0] steps_kept = step_taken < {kept} ? step_taken : {kept};

  {PROGRAM_TOP} engine (
    .clk(clk),
    .rst(reset),
    .error(engine_error),
{connections}
  );

{stopping(CONTROL)}
  // When the run stops: what happened (status.hex), the logits beats and their cycles, the step cycles.
{closing(status, depths.result, "step_cycle", "steps_kept")}"""


#: The 16x16 program engine the regressions and bench/program_rtl.py run: the engine's widths of verif.configs'
#: NETWORK and limits that cover the digits network, the narrow ResNet of rtl_tests and the ResNet-20 of
#: Fashion-MNIST (28x28 input, M <= 196, K <= 1024, N <= 64, 980 scratchpad words), so all share one build.
NETWORK_PROGRAM = ProgramEngineSpec(
    replace(NETWORK, max_m=256, max_k=1024, max_n=64), depth=1024, max_size=32, max_channels=64, max_n_tiles=4
)
