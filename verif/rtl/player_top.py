"""The Verilog of the stream-player testbench top: the engine with its beats, stalls and capture inside the HDL.

Driving every port from Python costs a round trip into the simulator per signal per cycle (some 500 cycles/s
at 16x16 on Verilator). Here each input stream has a *player*: a memory of beats, loaded in bulk with
`$readmemh`, offered under a seeded xorshift generator that idles the stream on a chosen fraction of cycles
(AXI-Stream: once `valid` is up it stays up until the beat is taken). The result stream has a *capture*:
`ready` from its own generator, every taken beat written to a memory with the cycle it was taken in, and
a checker counting handshake violations (`valid` dropped or the payload changed while not taken). Python
touches the simulator once per batch: reset, `load`, wait for `done`, and reads the files the top wrote.

The text is generated from the manifest of `hw.generate` (port names and widths), so it follows the
engine's interface. Files are read from and written to `players/` under the simulator's working directory
(`verif.rtl.players` points that at each batch's directory). The control file `ctl.hex` holds one 32-bit
word per entry of `CONTROL`. The pieces (`opening`, `player`, `capture`, `stopping`, `closing`) also build the
program engine's top (verif.rtl.program_top), with its own control words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from contract.streams import INPUTS, STREAMS

PLAYER_TOP = "nestmac_players"
#: The words of players/ctl.hex, in order. A stream idles (or drops `ready`) in a cycle when the top 16 bits
#: of its generator are below its threshold: threshold = round(p * 65536).
CONTROL = (
    *(f"count_{s}" for s in STREAMS),  # beats per input stream; result beats expected
    *(f"threshold_{s}" for s in STREAMS),
    *(f"seed_{s}" for s in STREAMS),  # nonzero
    "budget",  # the run stops (timeout) at this cycle
    "abort_at",  # nonzero: reset the engine at this cycle and stop (a reset at a random point)
    "drain",  # cycles `ready` stays high after the last expected beat, to catch any extra one
)
#: The words of players/status.hex, written when the run stops.
STATUS = ("results", *(f"taken_{s}" for s in INPUTS), "violations", "error", "timeout", "aborted", "cycles")


@dataclass(frozen=True)
class Depths:
    """Beats each memory holds: a batch of commands must fit (`verif.rtl.players` splits runs into batches).
    A command has at least one act and one result beat per cmd and param beat, and R weight beats per tile."""

    cmd: int = 1 << 12
    param: int = 1 << 12
    weight: int = 1 << 16
    act: int = 1 << 16
    result: int = 1 << 16

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


#: Cycles the engine's reset is held after an abort.
ABORT_RESET_CYCLES = 4


def _port(manifest: dict, name: str) -> dict:
    return next(p for p in manifest["ports"] if p["name"] == name)


def address_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def ctl_word(name: str, control: tuple[str, ...] = CONTROL) -> str:
    return f"ctl[{control.index(name)}]"


def player(stream: str, width: int, depth: int, control: tuple[str, ...] = CONTROL, lapped: bool = False) -> str:
    """A memory of beats offered in order; idles between beats when its generator says so.

    `lapped`: the memory's `count_<stream>` beats are offered `laps_<stream>` times over (a program's steps,
    weights and parameters, the same for every image), `<stream>_taken` counting every beat taken."""
    bits = address_bits(depth)
    ctl = {name: ctl_word(f"{name}_{stream}", control) for name in ("seed", "count", "threshold", *("laps",) * lapped)}
    if lapped:
        declarations = f"""
  reg [31:0] {stream}_lap, {stream}_taken;
  wire {stream}_wrap = {stream}_take && {stream}_index + 32'd1 == {ctl["count"]};"""
        start = f"""
      {stream}_lap <= 32'd0;
      {stream}_taken <= 32'd0;"""
        advance = f"""if ({stream}_take) begin
        {stream}_index <= {stream}_wrap ? 32'd0 : {stream}_index + 32'd1;
        {stream}_taken <= {stream}_taken + 32'd1;
      end
      if ({stream}_wrap) {stream}_lap <= {stream}_lap + 32'd1;"""
        more = f"({stream}_lap + {{31'd0, {stream}_wrap}} < {ctl['laps']})"
    else:
        declarations = start = ""
        advance = f"if ({stream}_take) {stream}_index <= {stream}_index + 32'd1;"
        more = f"({stream}_index + {{31'd0, {stream}_take}} < {ctl['count']})"
    return f"""
  // ---- player: {stream} ({width}-bit beats, {depth} deep)
  reg [{width - 1}:0] {stream}_mem [0:{depth - 1}];
  reg [31:0] {stream}_index, {stream}_rng;
  reg {stream}_valid;
  wire {stream}_ready;
  wire {stream}_take = {stream}_valid & {stream}_ready;{declarations}
  wire [{width - 1}:0] {stream}_payload = {stream}_valid ? {stream}_mem[{stream}_index[{bits - 1}:0]] : {width}'d0;
  always @(posedge clk)
    if (hold) begin
      {stream}_index <= 32'd0;
      {stream}_valid <= 1'b0;
      {stream}_rng <= {ctl["seed"]};{start}
    end else begin
      {stream}_rng <= xorshift({stream}_rng);
      {advance}
      if (!{stream}_valid || {stream}_take)
        {stream}_valid <= {more}
                          && ({stream}_rng[31:16] >= {ctl["threshold"]}[15:0]);
    end
"""


def capture(width: int, depth: int, control: tuple[str, ...] = CONTROL) -> str:
    """`ready` from a generator (always high once the expected beats are in), every taken beat and its cycle
    into memories, and the handshake checker."""
    bits = address_bits(depth)
    ctl = {name: ctl_word(f"{name}_result", control) for name in ("count", "threshold", "seed")}
    return f"""
  // ---- capture: result ({width}-bit beats, {depth} deep)
  reg [{width - 1}:0] result_mem [0:{depth - 1}];
  reg [31:0] result_cycle [0:{depth - 1}];
  reg [31:0] result_rng, results;
  wire result_valid;
  wire [{width - 1}:0] result_payload;
  wire result_ready = !hold && (results >= {ctl["count"]}
                                || result_rng[31:16] >= {ctl["threshold"]}[15:0]);
  wire result_take = result_valid & result_ready;
  reg result_stuck;  // offered and not taken in the previous cycle
  reg [{width - 1}:0] result_held;
  reg [31:0] violations;
  always @(posedge clk)
    if (hold) begin
      result_rng <= {ctl["seed"]};
      result_stuck <= 1'b0;
    end else begin
      result_rng <= xorshift(result_rng);
      if (result_take && results < {depth}) begin
        result_mem[results[{bits - 1}:0]] <= result_payload;
        result_cycle[results[{bits - 1}:0]] <= cycle;
      end
      result_stuck <= result_valid & !result_ready;
      result_held <= result_payload;
    end
  always @(posedge clk)
    if (reset) violations <= 32'd0;
    else if (!hold && result_stuck && (!result_valid || result_payload != result_held))
      violations <= violations + 32'd1;
"""


def player_verilog(manifest: dict, depths: dict[str, int], clock_period_ns: int) -> str:
    """The testbench top for the engine that `manifest` describes, with `depths[stream]` beats per memory.

    The top makes its own clock: a clock driven from cocotb costs a simulator callback per edge, which on
    Verilator (without the delays of `--timing`) was most of the time of a cycle, even of a 2x2 engine."""
    widths = {s: _port(manifest, f"{s}__payload")["width"] for s in STREAMS}
    players = "".join(player(s, widths[s], depths[s]) for s in INPUTS)
    connections = ",\n".join(
        f"    .{s}__{signal}({s}_{signal})" for s in STREAMS for signal in ("valid", "ready", "payload")
    )
    cmd_depth, result_depth = depths["cmd"], depths["result"]
    cmd_bits = address_bits(cmd_depth)
    status = [
        "results",
        *(f"{s}_index" for s in INPUTS),
        "violations",
        "{31'd0, engine_error}",
        "{31'd0, timeout}",
        "{31'd0, aborted}",
        "cycle",
    ]
    abort = f"""if (abort_left != 32'd0) begin
        abort_left <= abort_left - 32'd1;
        if (abort_left == 32'd1) done <= 1'b1;
      end else if ({ctl_word("abort_at")} != 32'd0 && cycle == {ctl_word("abort_at")}) begin
        aborted <= 1'b1;
        abort_left <= 32'd{ABORT_RESET_CYCLES};
      end else """
    origin = f"verif.rtl.player_top from the engine's manifest: stream players around {manifest['top']}"
    return f"""{opening(origin, PLAYER_TOP, len(CONTROL), clock_period_ns)}
  reg [31:0] cycle, drained, abort_left;
  reg timeout, aborted;
  wire hold = reset | done | (abort_left != 32'd0);
  wire engine_error;

  always @(posedge load) begin
    $readmemh("players/ctl.hex", ctl);
{loads(INPUTS)}
  end
{players}{capture(widths["result"], result_depth)}
  reg [31:0] cmd_cycle [0:{cmd_depth - 1}];
  always @(posedge clk)
    if (!hold && cmd_take) cmd_cycle[cmd_index[{cmd_bits - 1}:0]] <= cycle;

  {manifest["top"]} engine (
    .clk(clk),
    .rst(reset | (abort_left != 32'd0)),
    .error(engine_error),
{connections}
  );

{stopping(CONTROL, ["abort_left <= 32'd0", "aborted <= 1'b0"], abort)}
  // When the run stops: what happened (status.hex), the result beats and their cycles, the cmd cycles.
{closing(status, result_depth, "cmd_cycle", "cmd_index")}"""


def opening(origin: str, module: str, control_words: int, clock_period_ns: int) -> str:
    """A player top's module header (`origin`: what generated it, from what): its own clock, the registered
    reset, the xorshift generator, `ctl`."""
    return f"""// Generated by {origin}.
module {module}(rst, load, done);
  reg clk;
  initial clk = 1'b0;
  always #{clock_period_ns // 2} clk = ~clk;
  input rst;   // resets the players and the engine; a run starts in the cycle after it falls
  input load;  // rising edge: read the batch from players/*.hex
  output done; // the run has stopped and players/ holds its capture
  reg done;
  // `rst` through a flip-flop, so that no logic hangs combinationally on an input: Verilator evaluates the
  // logic fed by the top's inputs in every evaluation, twice a cycle, and with the engine's reset fanning
  // out that was 38% of a 16x16 run's time.
  reg reset;
  always @(posedge clk) reset <= rst;

  function [31:0] xorshift;
    input [31:0] x;
    reg [31:0] a;
    begin
      a = x ^ (x << 13);
      a = a ^ (a >> 17);
      xorshift = a ^ (a << 5);
    end
  endfunction

  reg [31:0] ctl [0:{control_words - 1}];"""


def stopping(control: tuple[str, ...], resets: list[str] = (), before: str = "") -> str:
    """The cycle counter and when the run stops: at the `budget` cycle (a timeout), or `drain` cycles after the
    expected result beats are in. `resets`: more assignments under reset; `before`: branches taken first (an
    `if ... else ` chain that the budget's `if` continues)."""
    clears = "".join(f"\n      {assignment};" for assignment in resets)
    return f"""  always @(posedge clk)
    if (reset) begin
      cycle <= 32'd0;
      results <= 32'd0;
      drained <= 32'd0;
      done <= 1'b0;
      timeout <= 1'b0;{clears}
    end else if (!done) begin
      cycle <= cycle + 32'd1;
      if (result_take) results <= results + 32'd1;
      {before}if (cycle == {ctl_word("budget", control)}) begin
        timeout <= 1'b1;
        done <= 1'b1;
      end else if (results >= {ctl_word("count_result", control)}) begin
        drained <= drained + 32'd1;
        if (drained == {ctl_word("drain", control)}) done <= 1'b1;
      end
    end
"""


def closing(status: list[str], result_depth: int, cycles: str, cycles_written: str) -> str:
    """Once `done`: the `status` words (status.hex), the captured beats and their cycles, and the memory
    `cycles` of transfer cycles of another stream (its first `cycles_written` entries); then the module's end."""
    assignments = "\n".join(f"      status[{i}] = {value};" for i, value in enumerate(status))
    return f"""  reg [31:0] status [0:{len(status) - 1}];
  reg written;
  wire [31:0] kept = results < {result_depth} ? results : {result_depth};  // beats in result_mem
  always @(posedge clk)
    if (reset) written <= 1'b0;
    else if (done && !written) begin
      written <= 1'b1;
{assignments}
      $writememh("players/status.hex", status);
      if (results != 32'd0) begin
        $writememh("players/result.hex", result_mem, 0, kept - 32'd1);
        $writememh("players/result_cycle.hex", result_cycle, 0, kept - 32'd1);
      end
      if ({cycles_written} != 32'd0)
        $writememh("players/{cycles}.hex", {cycles}, 0, {cycles_written} - 1);
    end
endmodule
"""


def loads(streams: tuple[str, ...], control: tuple[str, ...] = CONTROL) -> str:
    """Each input memory reads exactly its beat count (no warning about a short file, nothing read if none)."""
    lines = []
    for s in streams:
        count = ctl_word(f"count_{s}", control)
        lines.append(f'    if ({count} != 32\'d0) $readmemh("players/{s}.hex", {s}_mem, 0, {count} - 1);')
    return "\n".join(lines)
