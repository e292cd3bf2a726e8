"""Layer programs on the program engine's Verilog: batches of images back to back, logits and step cycles back.

`run_program_on_rtl` builds the player top of verif.rtl.program_top once per (simulator, engine, depths)
(cached under build/rtl/ like every other build), writes each batch's files (the control words, and one
`$readmemh` file per input stream: verif.program_steps' beats packed with the HDL's own layouts), runs all
batches in one simulation (verif/rtl/players_tb.py, one reset per batch) and reads back what the top wrote.
A batch is one compiled program (contract.program.compile_program) and any number of images: the program's
steps, weights and parameters are offered once per image, each image's words in turn. `problems` lists what a
capture does wrong: logits against golden's, beats, handshakes, `error`, and with ideal streams any step whose
cycles differ from sim.program_cycles'.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract import streams
from contract.program import Program, ProgramImages
from sim.program_cycles import IDLE_CYCLES, program_step_cycles
from verif.program_steps import image_beats, image_step, layer_step, param_beats, weight_beats
from verif.rtl.hexbeats import pack_hex, unpack_hex, unpack_words
from verif.rtl.players import PlayerMemoryError, drain_cycles, play_batches, read_status, read_words
from verif.rtl.program_top import (
    CONTROL,
    INPUTS,
    PROGRAM_PLAYERS,
    PROGRAM_TOP,
    STATUS,
    ProgramDepths,
    ProgramEngineSpec,
    program_player_verilog,
    program_verilog,
)
from verif.rtl.runner import CLOCK_PERIOD_NS, PLAYER_PORTS, Built, build_under, compile_top

DEPTHS = ProgramDepths()
#: The streams a batch may pause: the inputs (their players idle) and `logits` (the capture drops `ready`).
PAUSABLE = (*INPUTS, "logits")


@dataclass(frozen=True)
class ProgramBatch:
    """`codes` [images, C, H, W] through `program`, back to back after one reset; `stall[stream]` is the
    probability that the stream pauses in a cycle (`PAUSABLE`), drawn from generators seeded by `seed`."""

    program: Program
    images: ProgramImages
    codes: np.ndarray
    stall: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    @property
    def ideal(self) -> bool:
        """No stream pauses: every step's cycles must equal the model's."""
        return not any(self.stall.values())

    @property
    def logits_beats(self) -> int:
        """Logits beats per image: the last layer's N-tiles (its output is one pixel)."""
        return self.program.descriptors[-1].n_tiles(self.program.cols)


@dataclass(frozen=True)
class ProgramCapture:
    """What the top wrote when a batch stopped (cycles count from the cycle after reset)."""

    status: dict[str, int]
    logits: np.ndarray  # [images, N], the images that finished
    step_taken: np.ndarray  # [images, steps]: the cycle each step was taken in
    last_logits: np.ndarray  # [images]: the cycle of each image's last logits beat

    def step_cycles(self) -> np.ndarray:
        """[images, steps]: from taking each step to taking the next one of its image, and for the last step
        (the logits layer) to its last logits beat: what sim.program_cycles.program_step_cycles gives."""
        taken = self.step_taken
        return np.concatenate([np.diff(taken, axis=1), (self.last_logits - taken[:, -1])[:, None]], axis=1)

    def image_periods(self) -> np.ndarray:
        """Cycles from one image's first step to the next image's: the cost of an image back to back, with
        ideal streams its steps' cycles and IDLE_CYCLES (its last logits beat leaves, `busy` falls, the
        engine sees every unit idle and takes the next step)."""
        return np.diff(self.step_taken[:, 0])


def modelled_step_cycles(spec: ProgramEngineSpec, program: Program) -> list[int]:
    """sim.program_cycles' cycles of each step of `program` (the image step first), every stream ideal."""
    return [program_step_cycles(spec.cfg, program, d) for d in (None, *program.descriptors)]


def build_program(simulator: str, spec: ProgramEngineSpec, depths: ProgramDepths = DEPTHS) -> Built:
    """Generate and compile the program engine of `spec` in its player top: once per process, and compiled
    once across processes (the Verilog is generated again in each, as the build's key)."""
    return _build_program(simulator, spec, depths)


@functools.cache
def _build_program(simulator: str, spec: ProgramEngineSpec, depths: ProgramDepths) -> Built:

    def make(root: Path) -> Built:
        engine, widths = program_verilog(spec)
        top = program_player_verilog(widths, depths, CLOCK_PERIOD_NS)
        texts = {f"{PROGRAM_TOP}.v": engine, f"{PROGRAM_PLAYERS}.v": top}
        return compile_top(simulator, root, PROGRAM_PLAYERS, PLAYER_PORTS, texts, own_clock=True)

    return build_under(simulator, spec.name, make)


#: The contract stream whose payload layout each input's beats have: an image beat is a scratchpad word and
#: `last`, the `act` stream's layout; `step` has a layout of its own (hw.program_engine.step_layout).
CONTRACT_LAYOUTS = {"image": "act", "weight": "weight", "param": "param"}


def stream_beats(batch: ProgramBatch) -> dict[str, list[dict]]:
    """One lap of `step`, `weight` and `param` (one image's run), and every image's words."""
    program, images = batch.program, batch.images
    return {
        "step": [image_step(program)] + [layer_step(program, d) for d in program.descriptors],
        "image": [beat for codes in batch.codes for beat in image_beats(program, codes)],
        "weight": [beat for d in program.descriptors for beat in weight_beats(program, images, d)],
        "param": [beat for d in program.descriptors for beat in param_beats(program, images, d)],
    }


def stream_hex(spec: ProgramEngineSpec, name: str, beats: list[dict]) -> bytes:
    """`$readmemh` text of an input stream's beats: the contract's packer (vectorised) where the port has a
    contract stream's layout, the HDL's step layout for `step` (a few beats per image)."""
    if name == "step":
        layout = spec.step_layout()
        digits = -(-layout.size // 4)
        return "".join(f"{layout.const(beat).as_value().value:0{digits}x}\n" for beat in beats).encode()
    port = streams.stream(spec.cfg, CONTRACT_LAYOUTS[name])
    return pack_hex(port, {field.name: np.array([beat[field.name] for beat in beats]) for field in port.fields})


def _check_fits(batch: ProgramBatch, counts: dict[str, int], depths: ProgramDepths) -> None:
    d = batch.program.descriptors[-1]
    if d.out_shape[1:] != (1, 1):
        raise ValueError(f"the last layer {d.name!r} has a {d.out_shape[1]}x{d.out_shape[2]} output; want one pixel")
    needs = {**counts, "result": counts["result"], "step_cycle": len(batch.codes) * counts["step"]}
    limits = depths.as_dict()
    for memory, beats in needs.items():
        if beats > limits[memory]:
            raise PlayerMemoryError(
                f"{len(batch.codes)} images need {beats} {memory} entries, the top holds {limits[memory]}"
            )


def write_batch(spec: ProgramEngineSpec, batch: ProgramBatch, directory: Path, depths: ProgramDepths = DEPTHS) -> None:
    """The batch's control words and input beats as players/*.hex in `directory`; earlier captures removed."""
    beats = stream_beats(batch)
    images = len(batch.codes)
    counts = {name: len(values) for name, values in beats.items()} | {"result": images * batch.logits_beats}
    _check_fits(batch, counts, depths)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.hex"):
        stale.unlink()
    words = {f"count_{s}": counts[s] for s in (*INPUTS, "result")}
    words |= {f"laps_{s}": (1 if s == "image" else images) if counts[s] else 0 for s in INPUTS}
    for name in PAUSABLE:
        p = batch.stall.get(name, 0.0)
        if not 0 <= p < 1:
            raise ValueError(f"stall probability of {name} must be in [0, 1), got {p}")
        control = "result" if name == "logits" else name
        words[f"threshold_{control}"] = min(round(p * 65536), 65535)
        words[f"seed_{control}"] = zlib.crc32(f"{batch.seed}/{name}".encode()) | 1
    modelled = images * sum(modelled_step_cycles(spec, batch.program))
    words["budget"] = min(50 * modelled + 2000, (1 << 32) - 2)  # generous even at 90% stalls
    words["drain"] = drain_cycles(spec.cfg)
    (directory / "ctl.hex").write_text("".join(f"{words[name]:08x}\n" for name in CONTROL))
    for name in INPUTS:
        (directory / f"{name}.hex").write_bytes(stream_hex(spec, name, beats[name]))


def read_capture(spec: ProgramEngineSpec, batch: ProgramBatch, directory: Path) -> ProgramCapture:
    status = read_status(directory, STATUS)
    cfg, program = spec.cfg, batch.program
    per_image, steps = batch.logits_beats, 1 + len(program.descriptors)
    values = unpack_hex(streams.stream(cfg, "result"), read_words(directory, "result.hex"))["values"]
    values = values.reshape(-1, cfg.cols)
    finished = len(values) // per_image
    logits = values[: finished * per_image].reshape(finished, per_image * cfg.cols)
    taken = np.array(unpack_words(read_words(directory, "step_cycle.hex")), dtype=np.int64)
    beat_cycles = np.array(unpack_words(read_words(directory, "result_cycle.hex")), dtype=np.int64)
    return ProgramCapture(
        status,
        logits[:, : program.descriptors[-1].out_shape[0]],
        taken[: finished * steps].reshape(finished, steps),
        beat_cycles[per_image - 1 : finished * per_image : per_image],
    )


def run_program_on_rtl(
    simulator: str,
    spec: ProgramEngineSpec,
    batches: list[ProgramBatch],
    run_name: str,
    depths: ProgramDepths = DEPTHS,
) -> list[ProgramCapture]:
    """Run `batches` one after the other (each after a reset) in one simulation of the program engine's top."""
    built = build_program(simulator, spec, depths)

    def write(batch: ProgramBatch, directory: Path) -> None:
        write_batch(spec, batch, directory, depths)

    directories = play_batches(built, spec.cfg, run_name, batches, write)
    return [read_capture(spec, batch, d) for batch, d in zip(batches, directories, strict=True)]


def wrong_images(capture: ProgramCapture, golden: np.ndarray) -> list[int]:
    """The images (of those that finished) whose logits differ from `golden` [images, N]."""
    golden = np.asarray(golden)
    return [i for i in range(len(capture.logits)) if not np.array_equal(capture.logits[i], golden[i])]


def steps_off_model(spec: ProgramEngineSpec, batch: ProgramBatch, capture: ProgramCapture) -> np.ndarray:
    """(image, step) of every step whose cycles differ from the model's (of the images that finished)."""
    return np.argwhere(capture.step_cycles() != np.array(modelled_step_cycles(spec, batch.program)))


def problems(spec: ProgramEngineSpec, batch: ProgramBatch, capture: ProgramCapture, golden: np.ndarray) -> list[str]:
    """Everything `capture` does wrong for `batch`, whose logits must be `golden` [images, N]: a handshake
    violation, a hang, `error`, beats not taken or not made, each image whose logits differ, and with ideal
    streams each step whose cycles differ from the model's."""
    status, images = capture.status, len(batch.codes)
    found = []
    if status["violations"]:
        found.append(f"{status['violations']} cycles in which logits dropped valid or changed before ready")
    if status["timeout"]:
        found.append(f"timed out after {status['cycles']} cycles with {status['results']} logits beats")
    if status["error"]:
        found.append("error raised by a legal program")
    if status["results"] != images * batch.logits_beats:
        found.append(f"{status['results']} logits beats, want {images * batch.logits_beats}")
    beats = {name: len(values) for name, values in stream_beats(batch).items()}
    for name in INPUTS:
        want = beats[name] * (1 if name == "image" else images)
        if status[f"taken_{name}"] != want:
            found.append(f"the engine took {status[f'taken_{name}']} of {want} {name} beats")
    wrong = wrong_images(capture, golden)
    if wrong:
        first = wrong[0]
        found.append(
            f"{len(wrong)} of {images} images' logits differ from golden, first image {first}: Verilog "
            f"{capture.logits[first].tolist()}, golden {np.asarray(golden)[first].tolist()}"
        )
    if batch.ideal:
        off = steps_off_model(spec, batch, capture)
        if len(off):
            image, step = (int(v) for v in off[0])
            modelled = modelled_step_cycles(spec, batch.program)[step]
            found.append(
                f"{len(off)} of {capture.step_taken.size} steps' cycles differ from the model, first image {image} "
                f"step {step}: {capture.step_cycles()[image, step]} cycles, model {modelled}"
            )
        periods = capture.image_periods()
        back_to_back = sum(modelled_step_cycles(spec, batch.program)) + IDLE_CYCLES
        if (periods != back_to_back).any():
            found.append(f"images back to back every {span_text(periods)} cycles, want {back_to_back}")
    return found


def span_text(values: np.ndarray) -> str:
    """Cycle counts as one number when all are equal, else `min..max` (`-` for none)."""
    if len(values) == 0:
        return "-"
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}..{high}"
