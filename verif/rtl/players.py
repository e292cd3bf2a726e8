"""Commands through the stream players (`verif.rtl.player_top`): batches, their files, and what came back.

`play` writes each batch's beats and control words as `$readmemh` files, runs all batches in one simulation
(`verif.rtl.players_tb`) and reads back what the top captured; `problems` lists everything a capture does
wrong against the cycle-exact model (whose outputs are golden's integer path), `observed` turns a capture
into what `verif.scoreboard` checks. A run is split into batches that fit the players' memories; a command
that alone does not fit is refused before anything is built or simulated.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract import streams
from contract.cli import InputError
from contract.config import EngineConfig
from eda.tools import ToolError
from sim.command import Command
from sim.model import EngineModel, command_cycles
from sim.streams import beat_counts, command_arrays, concatenate, last_result_beats
from verif.rtl.hexbeats import pack_hex, unpack_hex, unpack_words
from verif.rtl.player_top import CONTROL, STATUS, Depths
from verif.rtl.runner import Built, build, run_cocotb_on
from verif.scoreboard import Observed
from verif.stalls import Never, Pauses, Random

DEPTHS = Depths()  # the memories every player build has, unless a caller asks for others


def drain_cycles(cfg: EngineConfig) -> int:
    """Cycles `ready` stays high after the last expected result beat, to catch an extra one (as the
    per-cycle bench does)."""
    return 2 * (cfg.rows + cfg.cols) + 10


class PlayerMemoryError(InputError):
    """A command needs more beats on some stream than its player's memory holds."""


@dataclass(frozen=True)
class Batch:
    """Commands played back to back after a reset. `stall[stream]` is the probability that a player idles
    (or the capture drops `ready`) in a cycle; `abort_at`, if nonzero, resets the engine at that cycle."""

    commands: list[Command]
    stall: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    abort_at: int = 0

    @property
    def ideal(self) -> bool:
        """No stall and no abort: the cycles must equal the model's exactly."""
        return not self.abort_at and not any(self.stall.values())


def stall_probabilities(pauses: dict[str, Pauses]) -> dict[str, float]:
    """A scenario's pause generators as player probabilities (only `Random` and `Never` exist in the HDL)."""
    for name, pause in pauses.items():
        if not isinstance(pause, Random | Never):
            raise ValueError(f"the players cannot reproduce {pause!r} on {name}")
    return {name: getattr(pause, "p", 0.0) for name, pause in pauses.items()}


def split(cfg: EngineConfig, commands: list[Command], depths: Depths = DEPTHS) -> list[list[Command]]:
    """`commands` in consecutive batches that fit the memories of `depths`."""
    limits = depths.as_dict()
    batches, current, used = [], [], dict.fromkeys(streams.STREAMS, 0)
    for index, command in enumerate(commands):
        counts = beat_counts(cfg, command)
        too_big = [s for s in streams.STREAMS if counts[s] > limits[s]]
        if too_big:
            stream = too_big[0]
            raise PlayerMemoryError(
                f"command {index} ({command.m}x{command.k_dim}x{command.n}) needs {counts[stream]} {stream} beats, "
                f"more than the {limits[stream]} its player holds"
            )
        if any(used[s] + counts[s] > limits[s] for s in streams.STREAMS):
            batches.append(current)
            current, used = [], dict.fromkeys(streams.STREAMS, 0)
        current.append(command)
        used = {s: used[s] + counts[s] for s in streams.STREAMS}
    return [*batches, current] if current else batches


def total_beats(cfg: EngineConfig, commands: list[Command]) -> dict[str, int]:
    return {s: sum(beat_counts(cfg, c)[s] for c in commands) for s in streams.STREAMS}


def _check_fits(cfg: EngineConfig, batch: Batch, depths: Depths) -> None:
    if len(split(cfg, batch.commands, depths)) > 1:
        raise PlayerMemoryError(f"a batch of {len(batch.commands)} commands does not fit the players' memories")


def _control(cfg: EngineConfig, batch: Batch, counts: dict[str, int]) -> list[int]:
    modelled = sum(command_cycles(cfg, c.m, c.k_dim, c.n, c.wbits).total for c in batch.commands)
    words = {f"count_{s}": counts[s] for s in streams.STREAMS}
    for stream in streams.STREAMS:
        p = batch.stall.get(stream, 0.0)
        if not 0 <= p < 1:
            raise ValueError(f"stall probability of {stream} must be in [0, 1), got {p}")
        words[f"threshold_{stream}"] = min(round(p * 65536), 65535)
        words[f"seed_{stream}"] = zlib.crc32(f"{batch.seed}/{stream}".encode()) | 1
    # Generous even when every stream stalls 90% of the time; a hung engine stops here instead of never.
    words["budget"] = min(50 * modelled + 2000, (1 << 32) - 2)
    words["abort_at"] = batch.abort_at
    words["drain"] = drain_cycles(cfg)
    return [words[name] for name in CONTROL]


def write_batch(cfg: EngineConfig, batch: Batch, directory: Path) -> None:
    """The batch's control words and input beats as players/*.hex in `directory`; earlier captures removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.hex"):
        stale.unlink()
    rng = np.random.default_rng(batch.seed)  # fills the don't-care lanes, which the engine must ignore
    arrays = concatenate([command_arrays(cfg, c, np.zeros((c.m, c.n), dtype=np.int64), rng) for c in batch.commands])
    counts = total_beats(cfg, batch.commands)
    (directory / "ctl.hex").write_text("".join(f"{word:08x}\n" for word in _control(cfg, batch, counts)))
    for name in streams.INPUTS:
        (directory / f"{name}.hex").write_bytes(pack_hex(streams.stream(cfg, name), arrays[name]))


@dataclass(frozen=True)
class Capture:
    """What the top wrote when the run stopped."""

    status: dict[str, int]
    values: np.ndarray  # [beats, C] result values in the order taken
    last: np.ndarray  # [beats]
    result_cycles: np.ndarray  # cycle of each result transfer (from reset release)
    cmd_cycles: np.ndarray  # cycle of each cmd transfer


def read_status(directory: Path, names: tuple[str, ...]) -> dict[str, int]:
    """The status words a player top wrote when its batch stopped; ToolError if it never did."""
    if not (directory / "status.hex").exists():
        raise ToolError(f"the simulation stopped before the batch in {directory} finished")
    return dict(zip(names, unpack_words((directory / "status.hex").read_bytes()), strict=True))


def read_words(directory: Path, name: str) -> bytes:
    """A file of captured words, empty if the top wrote none (it writes a memory only when it holds any)."""
    path = directory / name
    return path.read_bytes() if path.exists() else b""


def read_capture(cfg: EngineConfig, directory: Path) -> Capture:
    status = read_status(directory, STATUS)

    def read(name: str) -> bytes:
        return read_words(directory, name)

    result = unpack_hex(streams.stream(cfg, "result"), read("result.hex"))
    return Capture(
        status,
        result["values"].reshape(-1, cfg.cols),
        result["last"],
        np.array(unpack_words(read("result_cycle.hex")), dtype=np.int64),
        np.array(unpack_words(read("cmd_cycle.hex")), dtype=np.int64),
    )


def play(
    simulator: str,
    cfg: EngineConfig,
    batches: list[Batch],
    run_name: str,
    depths: Depths = DEPTHS,
) -> list[Capture]:
    """Run `batches` one after the other (each after a reset) in one simulation of the player top."""
    for batch in batches:
        _check_fits(cfg, batch, depths)
    built = build(simulator, cfg, depths)
    directories = play_batches(built, cfg, run_name, batches, functools.partial(write_batch, cfg))
    return [read_capture(cfg, directory) for directory in directories]


def play_batches(built: Built, cfg: EngineConfig, run_name: str, batches: list, write: Callable) -> list[Path]:
    """Write each batch's files (`write(batch, directory)`) and run them all, each after a reset, in one
    simulation of the player top `built` (verif.rtl.players_tb); the batches' directories, which hold what the
    top captured."""
    run_dir = built.root / "runs" / run_name
    directories = [run_dir / f"batch{index:05d}" for index in range(len(batches))]
    for batch, directory in zip(batches, directories, strict=True):
        write(batch, directory)
    scenario = {"batches": [str(d) for d in directories]}
    run = run_cocotb_on(built, cfg, "verif.rtl.players_tb", ["play"], scenario, run_name)
    if run.tests != 1 or run.failures:
        raise run.failure(f"the {built.simulator} player run (see {run.directory})")
    return directories


def expected_beats(cfg: EngineConfig, commands: list[Command], outputs) -> dict[str, np.ndarray]:
    """The result beats (values, last) of `commands` whose [M, N] outputs are `outputs`."""
    arrays = concatenate([command_arrays(cfg, c, np.asarray(o), None) for c, o in zip(commands, outputs, strict=True)])
    return arrays["result"]


def spans(cfg: EngineConfig, commands: list[Command], capture: Capture) -> list[tuple[int, int]]:
    """(acceptance, last result beat) of each command, relative to the first acceptance."""
    first = int(capture.cmd_cycles[0])
    ends = last_result_beats(cfg, commands)
    return [(int(capture.cmd_cycles[i]) - first, int(capture.result_cycles[end]) - first) for i, end in enumerate(ends)]


def modelled_spans(cfg: EngineConfig, commands: list[Command]) -> list[tuple[int, int]]:
    """`EngineModel.run`'s spans from the cycle formula alone (each next command accepted in the cycle after the
    previous one's last activation slot), without computing outputs the caller already has: a test set is 10^4
    commands."""
    found, accept = [], 0
    for command in commands:
        cycles = command_cycles(cfg, command.m, command.k_dim, command.n, command.wbits)
        found.append((accept, accept + cycles.total - 1))
        accept += cycles.issue
    return found


def problems(cfg: EngineConfig, batch: Batch, capture: Capture, outputs=None) -> list[str]:
    """Everything `capture` does wrong for `batch`: a handshake violation, a hang, a beat not taken or
    not made, a value or `last` that differs from `outputs` (default: the model's, i.e. golden's integer
    path), an extra beat, `error` raised, and with ideal streams any command whose cycles differ from the
    model's. An aborted batch must only be right as far as it went."""
    status, commands = capture.status, batch.commands
    if outputs is None:
        outputs = [result.outputs.numpy() for result in EngineModel(cfg).run(commands)]
    want = expected_beats(cfg, commands, outputs)
    found = []
    if status["violations"]:
        found.append(f"{status['violations']} cycles in which result dropped valid or changed before ready")
    if status["timeout"]:
        found.append(f"timed out after {status['cycles']} cycles with {status['results']} of {len(want['last'])} beats")
    got = len(capture.last)
    ends = np.cumsum([beat_counts(cfg, c)["result"] for c in commands])
    for index in range(min(got, len(want["last"]))):
        if (capture.values[index] != want["values"][index]).any() or capture.last[index] != want["last"][index]:
            command = int(np.searchsorted(ends, index, side="right"))
            found.append(
                f"result beat {index} (command {command}): engine {capture.values[index].tolist()} "
                f"last={capture.last[index]}, golden and model {want['values'][index].tolist()} "
                f"last={want['last'][index]}"
            )
            break
    if status["aborted"] or found:
        return found
    if status["results"] != len(want["last"]):
        found.append(f"{status['results']} result beats, want {len(want['last'])}")
    for stream, beats in total_beats(cfg, commands).items():
        if stream in streams.INPUTS and status[f"taken_{stream}"] != beats:
            found.append(f"the engine took {status[f'taken_{stream}']} of {beats} {stream} beats")
    if status["error"]:
        found.append("error raised by legal commands")
    if batch.ideal and not found:
        pairs = zip(spans(cfg, commands, capture), modelled_spans(cfg, commands), strict=True)
        for index, (measured, modelled) in enumerate(pairs):
            if measured != modelled:
                found.append(f"command {index}: accepted and last beat at cycles {measured}, model says {modelled}")
                break
    return found


def observed(capture: Capture) -> Observed:
    """A capture as `verif.scoreboard` reads a run (no per-cycle trace: the players keep none)."""
    received = [{"values": v.tolist(), "last": int(last)} for v, last in zip(capture.values, capture.last, strict=True)]
    return Observed(received, capture.cmd_cycles.tolist(), capture.result_cycles.tolist(), [])


def outputs_of(cfg: EngineConfig, commands: list[Command], capture: Capture) -> list[np.ndarray]:
    """Each command's [M, N] output reassembled from its result beats (N-tile outer, row m inner)."""
    outputs, index = [], 0
    for command in commands:
        tiles = beat_counts(cfg, command)["param"]
        blocks = capture.values[index : index + command.m * tiles].reshape(tiles, command.m, cfg.cols)
        index += command.m * tiles
        outputs.append(np.concatenate(list(blocks), axis=1)[:, : command.n])
    return outputs
