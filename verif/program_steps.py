"""The host's side of the program engine (hw/program_engine.py): a compiled program as the beats of its streams.

A program runs as: the image step and the image's words (the scratchpad layout of contract.program), then per
layer its step, its weight beats (the weight image's region, R rows of C codes per K-tile, per N-tile: the
order the array loads them) and its parameter beats (one per N-tile: C columns of bias, mult and shift), and
the logits come out of the last layer. Each beat is a dict of the port's fields; `payloads` packs them into
the integers on the ports with the HDL's own layouts.
"""

from __future__ import annotations

import numpy as np

from contract.numerics import MODES, SCHEMES
from contract.program import MAX_CANDIDATES, STORES, Descriptor, Program, ProgramError, ProgramImages
from verif.descriptors import window_fields


def image_step(program: Program) -> dict:
    return dict(kind=0, target=program.input_address)


def layer_step(program: Program, d: Descriptor) -> dict:
    """The step of descriptor `d`: the fields of hw.program_engine.step_layout. ProgramError (one line) for a
    layer in M-blocks: the model runs them (contract.program), the program engine's hardware not yet."""
    if d.block_rows:
        raise ProgramError(
            f"layer {d.name} runs in M-blocks of {d.block_rows} output rows, which the program engine's hardware "
            "does not run yet: compile it for an accumulator of at least its OH*OW rows"
        )
    operands = [dict(address=o.address, planes=o.planes, signed=int(o.signed)) for o in d.operands]
    return window_fields(d) | dict(
        kind=1,
        in_channels=d.in_shape[0],
        out_channels=d.out_shape[0],
        wbits=d.k,
        abits=d.j,
        scheme=SCHEMES.index(d.scheme),
        mode=MODES.index(d.mode),
        store=STORES.index(d.store),
        target=d.target,
        planes=d.planes,
        operand_count=len(operands),
        operands=operands,
        k_source=d.k_source,
        candidate_count=len(d.candidates),
        candidates=[*d.candidates, *[0] * (MAX_CANDIDATES - len(d.candidates))],
    )


def image_beats(program: Program, codes: np.ndarray) -> list[dict]:
    """The words of one image [C, H, W] in the scratchpad's layout (channel group g, then y, then x; lane l
    channel g*R + l, lanes beyond C zero), `last` on the final one."""
    R = program.rows
    channels, height, width = program.input_shape
    groups = -(-channels // R)
    padded = np.zeros((groups * R, height, width), dtype=np.int64)
    padded[:channels] = codes
    words = padded.reshape(groups, R, height * width).transpose(0, 2, 1).reshape(-1, R)
    return [dict(codes=word.tolist(), last=int(i == len(words) - 1)) for i, word in enumerate(words)]


def weight_beats(program: Program, images: ProgramImages, d: Descriptor) -> list[dict]:
    rows = images.weights[d.weight_offset : d.weight_offset + d.weight_codes(program.rows, program.cols)]
    rows = rows.reshape(-1, program.cols)
    return [dict(codes=row.tolist(), last=int(i == len(rows) - 1)) for i, row in enumerate(rows)]


def param_beats(program: Program, images: ProgramImages, d: Descriptor) -> list[dict]:
    C = program.cols
    tiles = images.params[d.param_offset : d.param_offset + d.param_rows(C)].reshape(-1, C, 3)
    return [
        dict(bias=t[:, 0].tolist(), mult=t[:, 1].tolist(), shift=t[:, 2].tolist(), last=int(i == len(tiles) - 1))
        for i, t in enumerate(tiles)
    ]


def program_beats(program: Program, images: ProgramImages, codes: np.ndarray) -> dict[str, list[dict]]:
    """Every input beat of one image's run, per stream: `step`, `image`, `weight`, `param`."""
    return {
        "step": [image_step(program)] + [layer_step(program, d) for d in program.descriptors],
        "image": image_beats(program, codes),
        "weight": [beat for d in program.descriptors for beat in weight_beats(program, images, d)],
        "param": [beat for d in program.descriptors for beat in param_beats(program, images, d)],
    }


def payloads(port, beats: list[dict]) -> list[int]:
    """The beats as the integers on an Amaranth stream port (its payload layout's constants)."""
    layout = port.payload.shape()
    return [layout.const(beat).as_value().value for beat in beats]
