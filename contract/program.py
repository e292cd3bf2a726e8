"""Layer programs: a whole network as descriptors an engine with an activation scratchpad would run back to back.

This is the reference format and compiler: no engine runs a program yet (docs/architecture.md, "Layer
programs and the activation scratchpad"). `sim.program` executes a program in Python and is tested equal, bit
for bit, to golden's integer path; the HDL must match that executor (hw/addrgen.py and hw/act_fetch.py, not
yet in the engine, walk its reads exactly).

**Scratchpad.** A word holds R activation codes (R = the array's rows): one R-wide activation row, read in one
cycle. A map [C, H, W] at address `base` is stored in G = ceil(C/R) channel groups:

    word(base, g, y, x) = base + (g*H + y)*W + x,     lane l holds channel g*R + l

so it takes G*H*W words. Lanes of channels >= C are never written and are read as code 0 (the reader masks
them), so a region may be reused without clearing it. A linear layer's output [N] is the map [N, 1, 1].

**Raw regions.** A raw layer (no ReLU) whose output is an operand of a residual add, but not the add's fusing
layer (below), stores the requantized-without-clamp value u = (t*mult + 2^(shift-1)) >> shift of
docs/numerics.md, "Host operations", exactly: the requantizer's `linear` mode, in which every raw layer whose
value stays on chip runs (its descriptor's mode; the logits stay `raw`). Its width is computed at compile time
as the widest u over every input and the layer's mult and shift at its k (`raw_bits`: t's extremes follow from
its weights and bias), and must fit the
engine's ACC-bit result (else the network is refused); the region holds P = ceil(width / A) planes,
each a map in the layout above, plane p holding bits p*A .. p*A+A-1 of u in two's complement:

    word(base, p, g, y, x) = base + p*G*H*W + (g*H + y)*W + x

**Implicit im2col.** A conv layer reads its X rows from the scratchpad: K-tile kt = (tap, g) with
kt = tap*G + g and tap = ky*KW + kx is channel group g at kernel tap (ky, kx), so output pixel (oy, ox) of
K-tile kt reads the one word at y = oy*s - p + ky, x = ox*s - p + kx (code 0 outside the map: zero padding).
The compiler permutes the weight rows to match, K index (ky, kx, g, lane) instead of the lowering's
(c_in, kh, kw), with zero rows for the missing lanes: the integer sum over the same products in another order
is the same, and wrapping to ACC bits happens once at the end (docs/numerics.md), so the outputs are
unchanged. A linear layer reading [C, H, W] is the same walk with a kernel of H x W, stride 1, no padding,
one output pixel: the flattened (c, h, w) vector in K-tiles of one channel group at one pixel. K grows to
KH*KW*G*R (a stem with C = 1 takes KH*KW K-tiles instead of ceil(KH*KW/R)).

**Weight and parameter images.** Each layer's permuted weights are stored in the weight image in the order
the array loads them: for each N-tile, for each K-tile, R rows of C codes (zero padded), from
`weight_offset`; its bias, mult and shift at its k in the parameter image, one row per output column, NT*C
rows from `param_offset`.

**Fused residual add.** An add runs in the output path of its last operand's layer (the latest in execution
order), which must be a layer read by that add alone: the layer's own value (its ReLU codes, or u for a raw
layer) plus the other operands read from the scratchpad (codes, or raw regions), clamped to 0 .. 2^A-1, is
written as the add's output map. The numerics are exactly those of "Host operations"; no host work remains.

**M-blocks.** The engine's accumulator holds max_m rows (weight-stationary: a tile's weights stay while all M
rows of a command stream through), so a conv layer whose M = OH*OW exceeds it runs as several blocks of whole
output rows, `block_rows` each (the last may have fewer; 0: one block), which the compiler chooses
(`m_block_rows`) as the fewest blocks for the engine's max_m, as even as they can be (28 rows at OW = 28 and
max_m = 196: 4 blocks of 7). Each block is a whole pass over the layer's N-tiles and K-tiles: its own GEMM
command of block_rows*OW rows, the layer's weights and parameters read again (its k bit-planes: still
exactly k/B of the bytes), the reads those output rows make (rows above or below the block are the map's
data, padding is only outside the map) and the writes (and fused operand reads) of its pixels. Rows are
independent in a GEMM, so the outputs are those of one block.

**Allocation.** A map is live from the layer that writes it to its last reader (inclusive); a new map takes
the lowest addresses free of every live map (first fit), so a layer's output never overlaps what it reads. A
program that does not fit is refused, naming the layer and the words needed against those available.

**Policies.** Uniform and static per-layer k set each descriptor's k. A dynamic policy runs its controller as a
`decision` step right after the layer it reads: a linear layer over that layer's map (docs/numerics.md, "The
controller's GEMM"), in raw mode, whose outputs go into decision registers instead of the scratchpad:
register i holds the index of the candidate with the largest output among controlled layer i's columns, the
first on ties (the smaller k: candidates ascend), so the argmax runs on chip, in the engine's decision unit.
A controlled layer names its register (`k_source`) and its candidates; its parameter region holds one block
of rows per candidate, and the engine takes the chosen block's beats and drops the others' (the weights are
the same codes at every k). Uncontrolled layers run at the controller's fixed k.

The encoded form (`encode_program`) is little-endian int32 words: a header (magic, PROGRAM_VERSION, the
geometry, the input map, the image sizes, the descriptor count), then per descriptor its length and fields
(`_FIELDS`, the name as its length and character codes, its fused operands as (address, planes, signed), then
its candidates as their count and values).
`decode_program` refuses a corrupt program with one line; a Program cannot be constructed invalid.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from contract.cli import InputError
from contract.config import MAX_ARRAY_DIM
from contract.model_format import INPUT, AddStep, Export, ExportedLayer, GemmStep, extended_operation, steps
from contract.numerics import (
    ACC_BITS_RANGE,
    ACT_BITS_RANGE,
    BASE_BITS_RANGE,
    MODES,
    SCHEMES,
)
from contract.policy import ResolvedPolicy
from contract.widths import ceil_div

PROGRAM_FORMAT = "nestmac-program"
#: 2: a raw layer whose value stays on chip runs in the requantizer's linear mode; 3: dynamic policies (decision
#: stores, controlled layers' register and candidates); 4: M-blocks (a descriptor's output rows per block).
PROGRAM_VERSION = 4
MAGIC = 0x524D4E  # "NMR" little-endian: the first word of an encoded program
KINDS = ("conv", "linear")
#: Where a layer's output goes: an A-bit code map, a raw region of planes, out as the logits, or (a
#: controller's) into the decision registers that later layers take their k from.
STORES = ("codes", "raw", "logits", "decision")
#: Field limits of the address generator (the widths the HDL will give them).
MAX_KERNEL = 7
MAX_STRIDE = 4
MAX_RAW_PLANES = 8
MAX_WORD = (1 << 31) - 1
#: A controller's limits in a program: candidates per controlled layer, and controlled layers (decision
#: registers).
MAX_CANDIDATES = 8
MAX_DECISIONS = 32


class ProgramError(InputError):
    """A network that cannot become a program, or a program that is not valid (one line)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ProgramError(message)


def map_words(shape: tuple[int, int, int], rows: int) -> int:
    """Words a [C, H, W] map takes: G = ceil(C/R) channel groups of H*W words."""
    channels, height, width = shape
    return ceil_div(channels, rows) * height * width


def signed_bits(value: int) -> int:
    """Bits of the narrowest two's-complement field holding `value`."""
    return (value if value >= 0 else ~value).bit_length() + 1


def weights_at(codes: np.ndarray, k: int, scheme: str, base_bits: int) -> np.ndarray:
    """The signed k-bit weights of B-bit codes (docs/numerics.md, Weights), as int64."""
    codes = codes.astype(np.int64)
    if scheme == "offset":
        return 2 * (codes >> (base_bits - k)) - ((1 << k) - 1)
    signed = np.where(codes >= 1 << (base_bits - 1), codes - (1 << base_bits), codes)
    return signed >> (base_bits - k)


def t_range(layer: ExportedLayer, k: int, export: Export) -> tuple[np.ndarray, np.ndarray]:
    """Per output column, the least and greatest t = wrap_ACC(acc + bias) of any input: acc is extreme when every
    activation is 0 or 2^A - 1 (x = a >> (A-j) with j = A) as its weight is negative or positive. A column
    whose extremes could wrap may give any ACC-bit t."""
    weights = weights_at(layer.weight_codes, k, export.scheme, export.base_bits)
    top_x = (1 << export.act_bits) - 1
    bias = layer.requant(k)[0].astype(np.int64)
    lo = top_x * np.minimum(weights, 0).sum(axis=0) + bias
    hi = top_x * np.maximum(weights, 0).sum(axis=0) + bias
    limit = 1 << (export.acc_bits - 1)
    wraps = (lo < -limit) | (hi > limit - 1)
    return np.where(wraps, -limit, lo), np.where(wraps, limit - 1, hi)


def raw_bits(layer: ExportedLayer, k: int, export: Export) -> int:
    """The exact worst-case width of u = (t*mult + 2^(shift-1)) >> shift over every input and every output
    column's mult and shift at k: u is monotonic in t, so the extremes are at the ends of t's range (`t_range`),
    which some input reaches."""
    _, mults, shifts = layer.requant(k)
    width = 1
    for lo, hi, mult, shift in zip(*(v.tolist() for v in (*t_range(layer, k, export), mults, shifts)), strict=True):
        rounding = 1 << (shift - 1) if shift > 0 else 0
        width = max(width, *(signed_bits((t * mult + rounding) >> shift) for t in (lo, hi)))
    return width


@dataclass(frozen=True)
class Operand:
    """A fused add's operand read from the scratchpad: a code map (planes 1, unsigned) or a raw region."""

    address: int
    planes: int
    signed: bool


@dataclass(frozen=True)
class Descriptor:
    """One layer of a program (module docstring). A linear layer has kernel (H, W), stride 1, padding 0."""

    name: str
    kind: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: int
    padding: int
    source: int
    store: str
    target: int  # 0 for logits
    planes: int  # 1 codes, P raw, 0 logits
    k: int
    j: int
    scheme: str
    mode: str
    weight_offset: int
    param_offset: int
    operands: tuple[Operand, ...] = ()
    #: 0: the layer runs at `k`; i > 0: at the candidate that decision register i - 1 names (`k` is then the
    #: largest candidate, the widest the layer may run at).
    k_source: int = 0
    #: A decision store's or a controlled layer's candidates, ascending.
    candidates: tuple[int, ...] = ()
    #: Output rows per M-block (module docstring, "M-blocks"); 0: the whole map in one block.
    block_rows: int = 0

    def blocks(self) -> list[tuple[int, int]]:
        """(first output row, output rows) of each M-block, in the order the engine runs them."""
        height = self.out_shape[1]
        step = self.block_rows or height
        return [(first, min(step, height - first)) for first in range(0, height, step)]

    def block_m(self) -> int:
        """The largest M-block's GEMM rows: its output rows times OW (OH*OW for a layer in one block)."""
        return min(self.block_rows or self.out_shape[1], self.out_shape[1]) * self.out_shape[2]

    def groups(self, rows: int) -> int:
        """G of the map read."""
        return ceil_div(self.in_shape[0], rows)

    def k_tiles(self, rows: int) -> int:
        return self.kernel[0] * self.kernel[1] * self.groups(rows)

    def n_tiles(self, cols: int) -> int:
        return ceil_div(self.out_shape[0], cols)

    def weight_codes(self, rows: int, cols: int) -> int:
        """Codes of this layer's region of the weight image."""
        return self.n_tiles(cols) * self.k_tiles(rows) * rows * cols

    def param_rows(self, cols: int) -> int:
        """Rows of this layer's region of the parameter image: one per output column, for each candidate of a
        controlled layer (candidate-major)."""
        return self.n_tiles(cols) * cols * (len(self.candidates) if self.k_source else 1)

    def decisions(self) -> int:
        """A decision store's registers: one per controlled layer (its columns, candidate by candidate)."""
        return self.out_shape[0] // len(self.candidates)

    def plane_words(self, rows: int) -> int:
        """Words of one plane of the output map (and of each operand)."""
        return map_words(self.out_shape, rows)


@dataclass(frozen=True)
class Program:
    """A validated layer program: constructing one checks every field, address and shape (`_validate`)."""

    rows: int
    cols: int
    base_bits: int
    act_bits: int
    acc_bits: int
    scratchpad_words: int
    input_address: int
    input_shape: tuple[int, int, int]
    weight_length: int  # codes in the weight image
    param_length: int  # rows in the parameter image
    descriptors: tuple[Descriptor, ...]

    def __post_init__(self):
        _validate(self)

    @property
    def words_used(self) -> int:
        """The highest scratchpad word any map occupies, plus one: the scratchpad this program needs."""
        ends = [self.input_address + map_words(self.input_shape, self.rows)]
        ends += [d.target + d.planes * d.plane_words(self.rows) for d in self.descriptors if d.store != "logits"]
        return max(ends)

    def gemm_limits(self) -> dict[str, int]:
        """The largest GEMM command of the program's layers (M = an M-block's rows times OW, K = its K-tiles times
        R, N): the max_m, max_k and max_n an engine running it needs (contract.config.EngineConfig)."""
        return dict(
            max_m=max(d.block_m() for d in self.descriptors),
            max_k=max(d.k_tiles(self.rows) * self.rows for d in self.descriptors),
            max_n=max(d.out_shape[0] for d in self.descriptors),
        )

    @property
    def kib_used(self) -> float:
        """`words_used` in KiB (words of R A-bit codes)."""
        return self.words_used * self.rows * self.act_bits / 8 / 1024


@dataclass(frozen=True, eq=False)
class ProgramImages:
    """What a program reads from outside besides the image: the weight codes (uint16) and the parameters
    (int64 [rows, 3]: bias, mult, shift)."""

    weights: np.ndarray
    params: np.ndarray


@dataclass(frozen=True)
class ProgramLimits:
    """What a program engine (hw/program_engine.py) is generated for besides its GEMM engine: the scratchpad's
    words (of R codes) and the largest map side, channel count, N-tile count and fused-add operand count of a
    layer (the widths of its step fields and counters)."""

    words: int
    max_size: int = 64
    max_channels: int = 1024
    max_n_tiles: int = 64
    max_operands: int = 2

    def __post_init__(self):
        for name in ("words", "max_size", "max_channels", "max_n_tiles", "max_operands"):
            value = getattr(self, name)
            _require(_is_int(value) and 1 <= value <= MAX_WORD, f"{name} must be a positive integer, got {value!r}")

    @classmethod
    def from_kib(cls, kib: float, rows: int, act_bits: int, **limits) -> ProgramLimits:
        """The scratchpad of `kib` KiB: words of R A-bit codes (16 KiB at R = 16, A = 8 is 1024 words)."""
        words = int(kib * 1024 * 8) // (rows * act_bits)
        _require(words >= 1, f"a scratchpad of {kib} KiB holds no word of {rows} {act_bits}-bit codes")
        return cls(words, **limits)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def check_fits(program: Program, limits: ProgramLimits, gemm: dict[str, int]) -> None:
    """ProgramError (one line) unless an engine with these limits and GEMM limits (max_m, max_k, max_n) runs
    `program`: its scratchpad, every layer's sizes, N-tiles and fused operands, and its GEMM commands."""
    _require(
        program.words_used <= limits.words,
        f"the program needs {program.words_used} scratchpad words, the engine has {limits.words}",
    )
    for d in program.descriptors:
        sizes = (*d.in_shape[1:], *d.out_shape[1:])
        for what, value, limit in (
            ("a map side", max(sizes), limits.max_size),
            ("channels", max(d.in_shape[0], d.out_shape[0]), limits.max_channels),
            ("N-tiles", d.n_tiles(program.cols), limits.max_n_tiles),
            ("fused operands", len(d.operands), limits.max_operands),
        ):
            _require(value <= limit, f"layer {d.name}: {what} {value} exceeds the engine's {limit}")
    for key, value in program.gemm_limits().items():
        _require(value <= gemm[key], f"the program needs {key} = {value}, the engine has {gemm[key]}")


# --- the compiler -------------------------------------------------------------------------------------


@dataclass
class _Value:
    """A map to allocate: written at step `start`, last read at step `end`."""

    name: str
    producer: str
    words: int
    start: int
    end: int
    planes: int = 1
    address: int = 0


def compile_program(
    export: Export,
    rows: int,
    cols: int,
    scratchpad_words: int,
    policy: ResolvedPolicy,
    max_m: int | None = None,
) -> tuple[Program, ProgramImages]:
    """The program of `export` on an R x C engine with a scratchpad of `scratchpad_words` words of R codes, each
    layer at the policy's k, a layer whose M = OH*OW exceeds `max_m` (the engine's accumulator depth; None: no
    limit) in M-blocks; ProgramError (one line) for what a program cannot do or a scratchpad too small."""
    controller = policy.controller
    if controller is None:
        ks = dict(zip((layer.name for layer in export.layers), policy.ks, strict=True))
    else:  # a controlled layer's widest candidate sizes its raw regions; its descriptor runs at the chosen one
        ks = {layer.name: controller.fixed.get(layer.name, max(controller.candidates)) for layer in export.layers}
    walked = list(steps(export))
    for step in walked:  # what the address generator and the output path cannot do, named
        _require((op := extended_operation(step)) is None, f"{op} is not yet supported by layer programs ({step.name})")
    position = {INPUT: -1} | {step.name: index for index, step in enumerate(walked)}
    fusing = _fusing_layers(walked, position)
    fused_into = {layer: add for add, layer in fusing.items()}
    runs_at = {name: (k,) for name, k in ks.items()}  # every k a layer may run at
    if controller is not None:
        runs_at |= {name: tuple(controller.candidates) for name in controller.controls}
    values = _values(export, walked, position, fusing, runs_at, rows)
    _allocate(list(values.values()), scratchpad_words, rows)
    adds = {step.name: step for step in walked if isinstance(step, AddStep)}
    descriptors, weights, params = [], [], []
    weight_offset = param_offset = 0
    for step in _with_controller(walked, controller, fused_into):
        if isinstance(step, AddStep):
            continue
        if controller is not None and step.name == controller.layer.name:
            descriptor = _decision(export, step, values, controller, weight_offset, param_offset)
        else:
            descriptor = _descriptor(export, step, values, adds, fused_into, ks[step.name], weight_offset, param_offset)
            descriptor = _controlled(descriptor, controller)
        descriptor = dataclasses.replace(descriptor, block_rows=m_block_rows(descriptor, max_m))
        candidates = descriptor.candidates if descriptor.k_source else (descriptor.k,)
        weights.append(weight_tiles(step.layer, descriptor.in_shape, descriptor.kernel, rows, cols))
        params.append(np.concatenate([param_rows(step.layer, k, cols) for k in candidates]))
        weight_offset += weights[-1].size
        param_offset += params[-1].shape[0]
        descriptors.append(descriptor)
    program = Program(
        rows,
        cols,
        export.base_bits,
        export.act_bits,
        export.acc_bits,
        scratchpad_words,
        values[INPUT].address,
        _as_map(export.input_shape),
        weight_offset,
        param_offset,
        tuple(descriptors),
    )
    return program, ProgramImages(np.concatenate(weights).astype(np.uint16), np.concatenate(params))


def m_block_rows(d: Descriptor, max_m: int | None) -> int:
    """Output rows per M-block of layer `d` on an accumulator of `max_m` rows (module docstring, "M-blocks"): 0
    when the whole map fits, else the fewest blocks of whole output rows, as even as they can be."""
    _, height, width = d.out_shape
    if max_m is None or height * width <= max_m:
        return 0
    _require(width <= max_m, f"layer {d.name}: one output row of {width} pixels exceeds max_m = {max_m}")
    return ceil_div(height, ceil_div(height, max_m // width))


def _with_controller(walked: list, controller, fused_into: dict[str, str]) -> list:
    """The walk with the controller's GEMM as a step right after the layer it reads (its own output map, which
    a fusing layer does not keep)."""
    if controller is None:
        return walked
    _require(
        controller.reads not in fused_into,
        f"controller {controller.name} reads {controller.reads}, whose output a program keeps only as its add's",
    )
    index = next(i for i, step in enumerate(walked) if step.name == controller.reads)
    reads = walked[index]
    step = GemmStep(controller.layer, controller.reads, reads.shape, False)
    return [*walked[: index + 1], step, *walked[index + 1 :]]


def _decision(export: Export, step: GemmStep, values: dict[str, _Value], controller, weights: int, params: int):
    """The controller's GEMM as a decision store: a linear layer over the map it reads, in raw mode."""
    in_shape = _as_map(step.source_shape)
    return Descriptor(
        step.name, "linear", in_shape, (step.layer.N, 1, 1), in_shape[1:], 1, 0, values[step.source].address,
        "decision", 0, 0, controller.k, export.act_bits, export.scheme, "raw", weights, params,
        candidates=tuple(controller.candidates),
    )  # fmt: skip


def _controlled(d: Descriptor, controller) -> Descriptor:
    """A layer the controller chooses k for names its decision register and the candidates (module docstring)."""
    if controller is None or d.name not in controller.controls:
        return d
    return dataclasses.replace(
        d, k_source=controller.controls.index(d.name) + 1, candidates=tuple(controller.candidates)
    )


def _values(
    export: Export,
    walked: list,
    position: dict[str, int],
    fusing: dict[str, str],
    runs_at: dict[str, tuple[int, ...]],
    rows: int,
) -> dict[str, _Value]:
    """Every map the scratchpad holds, with its size and when it is written and last read: the input, each
    layer's output but the logits, an add's output in place of its fusing layer's."""
    fused_into = {layer: add for add, layer in fusing.items()}
    read_at = {step.name: position[fusing.get(step.name, step.name)] for step in walked}
    values = {INPUT: _Value(INPUT, "the input image", map_words(export.input_shape, rows), -1, -1)}
    for step in walked:
        if isinstance(step, AddStep):
            for operand in (name for name in step.operands if name != fusing[step.name]):
                values[operand].end = max(values[operand].end, read_at[step.name])
            continue
        _check_layer(step, walked)
        values[step.source].end = max(values[step.source].end, position[step.name])
        if step.last:
            continue
        name = fused_into.get(step.name, step.name)
        planes = 1
        if step.layer.mode == "raw":  # its u stays on chip: the engine's linear mode gives it on the result port
            width = max(raw_bits(step.layer, k, export) for k in runs_at[step.name])
            _require(
                width <= export.acc_bits,
                f"layer {step.name}: its requantized value can need {width} bits, more than the engine's "
                f"{export.acc_bits}-bit result",
            )
        if step.layer.mode == "raw" and step.name not in fused_into:
            planes = ceil_div(width, export.act_bits)
            _require(
                planes <= MAX_RAW_PLANES,
                f"layer {step.name}: its raw output needs {planes} planes of {export.act_bits} bits, more than "
                f"{MAX_RAW_PLANES}",
            )
        start = position[step.name]
        values[name] = _Value(name, step.name, planes * map_words(_as_map(step.shape), rows), start, start, planes)
    return values


def _as_map(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A value's shape as a map: [N] is [N, 1, 1]."""
    return (shape[0], 1, 1) if len(shape) == 1 else tuple(shape)


def _fusing_layers(walked: list, position: dict[str, int]) -> dict[str, str]:
    """For each add, the layer whose output path runs it: its latest operand, a layer no other node reads."""
    readers: dict[str, list[str]] = {}
    for step in walked:
        for name in step.operands if isinstance(step, AddStep) else (step.source,):
            readers.setdefault(name, []).append(step.name)
    fusing = {}
    for step in walked:
        if isinstance(step, AddStep):
            latest = max(step.operands, key=position.__getitem__)
            producer = walked[position[latest]] if latest != INPUT else None
            _require(
                isinstance(producer, GemmStep) and readers[latest] == [step.name],
                f"add {step.name}: its latest operand {latest} is not a layer read by this add alone, so the "
                "add cannot run in that layer's output path",
            )
            fusing[step.name] = latest
    _require(isinstance(walked[-1], GemmStep), f"the network ends in add {walked[-1].name}, not a layer")
    return fusing


def _check_layer(step: GemmStep, walked: list) -> None:
    """What the address generator cannot do is refused here, naming the layer (the operations beyond format
    version 4 are refused before, by `compile_program`)."""
    layer = step.layer
    source = next((s for s in walked if s.name == step.source), None)
    _require(
        not (isinstance(source, GemmStep) and source.layer.mode == "raw"),
        f"layer {layer.name} reads raw layer {step.source}'s output, which a program stores only for adds",
    )
    if layer.kind == "conv":
        _require(
            1 <= layer.kernel <= MAX_KERNEL and 1 <= layer.stride <= MAX_STRIDE and 0 <= layer.padding < layer.kernel,
            f"layer {layer.name}: kernel {layer.kernel}, stride {layer.stride}, padding {layer.padding} is outside "
            f"what the address generator does (kernel 1..{MAX_KERNEL}, stride 1..{MAX_STRIDE}, padding < kernel)",
        )


def _allocate(values: list[_Value], capacity: int, rows: int) -> None:
    """First-fit addresses for `values` (in order of their producers) so that no two live ones overlap; a
    program that does not fit is refused naming the first map beyond the scratchpad and the words needed."""
    placed: list[_Value] = []
    for value in values:
        live = sorted((other for other in placed if other.end >= value.start), key=lambda other: other.address)
        address = 0
        for other in live:
            if address + value.words <= other.address:
                break
            address = max(address, other.address + other.words)
        value.address = address
        placed.append(value)
    needed = max(value.address + value.words for value in values)
    if needed > capacity:
        first = next(value for value in values if value.address + value.words > capacity)
        raise ProgramError(
            f"the program does not fit the scratchpad: at {_who(first)} it needs {first.address + first.words} words "
            f"of {rows} codes ({needed} for the whole program), "
            f"the scratchpad has {capacity}"
        )


def _who(value: _Value) -> str:
    return value.producer if value.name == INPUT else f"layer {value.producer}"


def _descriptor(
    export: Export,
    step: GemmStep,
    values: dict[str, _Value],
    adds: dict[str, AddStep],
    fused_into: dict[str, str],
    k: int,
    weights: int,
    params: int,
) -> Descriptor:
    layer = step.layer
    in_shape = _as_map(step.source_shape)
    add = fused_into.get(step.name)
    if layer.kind == "conv":
        kernel, stride, padding = (layer.kernel, layer.kernel), layer.stride, layer.padding
    else:
        kernel, stride, padding = in_shape[1:], 1, 0
    operands = ()
    if step.last:
        store, target, planes = "logits", 0, 0
    else:
        value = values[add or step.name]
        store = "raw" if layer.mode == "raw" and add is None else "codes"
        target, planes = value.address, value.planes
    if add is not None:
        operands = tuple(
            Operand(values[name].address, values[name].planes, _is_raw(export, name))
            for name in adds[add].operands
            if name != step.name
        )
    return Descriptor(
        layer.name,
        layer.kind,
        in_shape,
        _as_map(layer.out_shape),
        kernel,
        stride,
        padding,
        values[step.source].address,
        store,
        target,
        planes,
        k,
        export.act_bits,
        export.scheme,
        _engine_mode(layer.mode, store),
        weights,
        params,
        operands,
    )


def _engine_mode(layer_mode: str, store: str) -> str:
    """The requantizer's mode for a layer: a raw layer whose output stays on chip (a raw region, or the value
    of the add it fuses) runs in `linear` mode, which gives its u; the logits stay raw (t)."""
    return "linear" if layer_mode == "raw" and store != "logits" else layer_mode


def _is_raw(export: Export, name: str) -> bool:
    return any(layer.name == name and layer.mode == "raw" for layer in export.layers)


def weight_rows(in_shape: tuple[int, int, int], kernel: tuple[int, int], rows: int) -> np.ndarray:
    """For each row t' = ((ky*KW + kx)*G + g)*R + lane of the permuted weights, the lowering's row
    t = c*KH*KW + ky*KW + kx with c = g*R + lane, or -1 for a lane beyond the channels (a zero row)."""
    channels = in_shape[0]
    kh, kw = kernel
    groups = ceil_div(channels, rows)
    ky, kx, g, lane = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(groups), np.arange(rows), indexing="ij")
    c = g * rows + lane
    return np.where(c < channels, (c * kh + ky) * kw + kx, -1).reshape(-1)


def weight_tiles(layer: ExportedLayer, in_shape: tuple[int, int, int], kernel: tuple[int, int], rows: int, cols: int):
    """The layer's region of the weight image: its rows permuted (`weight_rows`), in load order
    (N-tile, K-tile, R rows, C columns), zero padded."""
    order = weight_rows(in_shape, kernel, rows)
    n_tiles = ceil_div(layer.N, cols)
    permuted = np.zeros((order.size, n_tiles * cols), dtype=np.int64)
    permuted[order >= 0, : layer.N] = layer.weight_codes[order[order >= 0]]
    k_tiles = order.size // rows
    return permuted.reshape(k_tiles, rows, n_tiles, cols).transpose(2, 0, 1, 3).reshape(-1)


def param_rows(layer: ExportedLayer, k: int, cols: int) -> np.ndarray:
    """The layer's region of the parameter image: (bias, mult, shift) at k per output column, zero padded to
    whole N-tiles."""
    table = np.zeros((ceil_div(layer.N, cols) * cols, 3), dtype=np.int64)
    table[: layer.N] = np.stack(layer.requant(k), axis=1)
    return table


# --- validation ---------------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(program: Program) -> None:
    for name, value, (lo, hi) in (
        ("rows", program.rows, (1, MAX_ARRAY_DIM)),
        ("cols", program.cols, (1, MAX_ARRAY_DIM)),
        ("base_bits", program.base_bits, BASE_BITS_RANGE),
        ("act_bits", program.act_bits, ACT_BITS_RANGE),
        ("acc_bits", program.acc_bits, ACC_BITS_RANGE),
        ("scratchpad_words", program.scratchpad_words, (1, MAX_WORD)),
        ("weight_length", program.weight_length, (0, MAX_WORD)),
        ("param_length", program.param_length, (0, MAX_WORD)),
    ):
        _require(
            _is_int(value) and lo <= value <= hi, f"program {name} must be an integer in {lo}..{hi}, got {value!r}"
        )
    _require(_is_shape(program.input_shape), f"program input shape {program.input_shape!r} is not [C, H, W]")
    _require(len(program.descriptors) > 0, "the program has no layers")
    # Which map each live region holds: a layer must read a map of the shape it expects, written before it.
    regions = {program.input_address: (program.input_shape, 1, False)}
    decided = 0  # decision registers set so far
    _check_region(program, "the input", program.input_address, map_words(program.input_shape, program.rows))
    for index, descriptor in enumerate(program.descriptors):
        where = f"program layer {index} ({descriptor.name})"
        _validate_descriptor(program, descriptor, where, index == len(program.descriptors) - 1)
        _require(
            regions.get(descriptor.source) == (descriptor.in_shape, 1, False),
            f"{where}: reads no [C, H, W] = {list(descriptor.in_shape)} code map at word {descriptor.source}",
        )
        for operand in descriptor.operands:
            _require(
                regions.get(operand.address) == (descriptor.out_shape, operand.planes, operand.signed),
                f"{where}: its add operand at word {operand.address} is not a {list(descriptor.out_shape)} map "
                f"of {operand.planes} planes",
            )
        decided = descriptor.decisions() if descriptor.store == "decision" else decided
        _require(
            descriptor.k_source <= decided,
            f"{where}: reads decision register {descriptor.k_source}, which no earlier decision store sets",
        )
        if descriptor.store in ("codes", "raw"):
            words = descriptor.planes * descriptor.plane_words(program.rows)
            reads = [(descriptor.source, map_words(descriptor.in_shape, program.rows))]
            reads += [(o.address, o.planes * descriptor.plane_words(program.rows)) for o in descriptor.operands]
            _require(
                not any(_overlap(descriptor.target, words, *read) for read in reads),
                f"{where}: its output at word {descriptor.target} overlaps a map it reads",
            )
            for address in [a for a in regions if _overlap(descriptor.target, words, a, _words(program, regions[a]))]:
                del regions[address]
            regions[descriptor.target] = (descriptor.out_shape, descriptor.planes, descriptor.store == "raw")


def _words(program: Program, region: tuple) -> int:
    shape, planes, _ = region
    return planes * map_words(shape, program.rows)


def _overlap(a: int, a_words: int, b: int, b_words: int) -> bool:
    return a < b + b_words and b < a + a_words


def _is_shape(shape) -> bool:
    return isinstance(shape, tuple) and len(shape) == 3 and all(_is_int(v) and 1 <= v <= MAX_WORD for v in shape)


def _check_region(program: Program, what: str, address: int, words: int) -> None:
    _require(
        _is_int(address) and 0 <= address and address + words <= program.scratchpad_words,
        f"{what} at word {address!r} ({words} words) is outside the scratchpad of {program.scratchpad_words} words",
    )


def _validate_descriptor(program: Program, d: Descriptor, where: str, last: bool) -> None:
    _require(
        isinstance(d.name, str) and 1 <= len(d.name) <= 255 and all(ord(c) >= 32 for c in d.name),
        f"{where}: a layer's name must be 1..255 printable characters (the encoding holds no more)",
    )
    _require(d.kind in KINDS and d.store in STORES, f"{where}: unknown kind {d.kind!r} or store {d.store!r}")
    _require(_is_shape(d.in_shape) and _is_shape(d.out_shape), f"{where}: shapes must be [C, H, W] of positive sizes")
    _require((d.store == "logits") == last, f"{where}: the last layer, and only it, sends its output out as the logits")
    (_, height, width), (_, out_h, out_w) = d.in_shape, d.out_shape
    if d.kind == "linear":
        _require(
            d.kernel == (height, width) and d.stride == 1 and d.padding == 0 and (out_h, out_w) == (1, 1),
            f"{where}: a linear layer reads its whole map: kernel (H, W), stride 1, padding 0, one output pixel",
        )
    else:
        _require(
            all(_is_int(v) and 1 <= v <= MAX_KERNEL for v in d.kernel)
            and _is_int(d.stride)
            and 1 <= d.stride <= MAX_STRIDE
            and _is_int(d.padding)
            and 0 <= d.padding < min(d.kernel),
            f"{where}: kernel {d.kernel}, stride {d.stride}, padding {d.padding} outside the address generator's",
        )
        expected = tuple(
            (size + 2 * d.padding - kernel) // d.stride + 1
            for size, kernel in zip(d.in_shape[1:], d.kernel, strict=True)
        )
        _require(
            (out_h, out_w) == expected,
            f"{where}: output {out_h}x{out_w} does not follow from its input, expected {expected}",
        )
    _require(
        _is_int(d.k) and 1 <= d.k <= program.base_bits and _is_int(d.j) and 1 <= d.j <= program.act_bits,
        f"{where}: k {d.k!r} or j {d.j!r} outside 1..B, 1..A",
    )
    _require(d.scheme in SCHEMES and d.mode in MODES, f"{where}: unknown scheme {d.scheme!r} or mode {d.mode!r}")
    planes = {"codes": (1, 1), "raw": (1, MAX_RAW_PLANES), "logits": (0, 0), "decision": (0, 0)}[d.store]
    _require(
        _is_int(d.planes) and planes[0] <= d.planes <= planes[1], f"{where}: {d.planes!r} planes for a {d.store} store"
    )
    _require(not d.operands or d.store == "codes", f"{where}: a fused add writes codes")
    allowed = {"raw": ("linear",), "logits": ("raw", "relu"), "decision": ("raw",)}.get(
        d.store, ("relu", "linear") if d.operands else ("relu",)
    )
    _require(d.mode in allowed, f"{where}: a {d.store} store runs in mode {' or '.join(allowed)}, not {d.mode}")
    _check_region(program, f"{where}: its input", d.source, map_words(d.in_shape, program.rows))
    if d.store in ("codes", "raw"):
        _check_region(program, f"{where}: its output", d.target, d.planes * d.plane_words(program.rows))
    _validate_precision_source(program, d, where)
    _require(
        _is_int(d.block_rows) and 0 <= d.block_rows <= out_h and (d.block_rows == 0 or d.kind == "conv"),
        f"{where}: {d.block_rows!r} output rows per M-block, expected 0..{out_h} (0 for a linear layer)",
    )
    for operand in d.operands:
        _require(
            _is_int(operand.planes) and 1 <= operand.planes <= MAX_RAW_PLANES and operand.signed in (True, False),
            f"{where}: a bad add operand {operand!r}",
        )
        _check_region(
            program, f"{where}: an add operand", operand.address, operand.planes * d.plane_words(program.rows)
        )
    for what, offset, size, length in (
        ("weights", d.weight_offset, d.weight_codes(program.rows, program.cols), program.weight_length),
        ("parameters", d.param_offset, d.param_rows(program.cols), program.param_length),
    ):
        _require(
            _is_int(offset) and 0 <= offset and offset + size <= length,
            f"{where}: its {what} at {offset!r} (+{size}) are outside the image of {length}",
        )


def _validate_precision_source(program: Program, d: Descriptor, where: str) -> None:
    """A decision store's and a controlled layer's candidates and registers (module docstring, "Policies")."""
    dynamic = d.store == "decision" or d.k_source != 0
    if not dynamic:
        _require(d.candidates == (), f"{where}: only a decision store or a controlled layer has candidates")
        return
    c = d.candidates
    _require(
        isinstance(c, tuple)
        and 1 <= len(c) <= MAX_CANDIDATES
        and all(_is_int(k) and 1 <= k <= program.base_bits for k in c)
        and list(c) == sorted(set(c)),
        f"{where}: candidates {c!r} must be 1..{MAX_CANDIDATES} distinct ascending k in 1..B",
    )
    if d.store == "decision":
        _require(
            d.kind == "linear" and d.k_source == 0 and d.out_shape[0] % len(c) == 0 and d.decisions() <= MAX_DECISIONS,
            f"{where}: a decision store is a linear layer with a whole number of candidates' columns for at most "
            f"{MAX_DECISIONS} controlled layers",
        )
    else:
        _require(
            _is_int(d.k_source) and 1 <= d.k_source <= MAX_DECISIONS and d.k == c[-1],
            f"{where}: a controlled layer names decision register 1..{MAX_DECISIONS} and runs at most at its "
            f"largest candidate",
        )


# --- the encoded form ---------------------------------------------------------------------------------

_HEADER = 15  # magic, version, rows, cols, B, A, ACC, words, input address, C, H, W, weights, params, count
_FIELDS = 24  # a descriptor's fixed fields after its name, the operand count last


def encode_program(program: Program) -> bytes:
    """The program as little-endian int32 words (module docstring): what the engine's program stream carries."""
    words = [MAGIC, PROGRAM_VERSION, program.rows, program.cols, program.base_bits, program.act_bits]
    words += [program.acc_bits, program.scratchpad_words, program.input_address, *program.input_shape]
    words += [program.weight_length, program.param_length, len(program.descriptors)]
    for d in program.descriptors:
        body = _descriptor_body(d)
        words += [len(body), *body]
    return np.asarray(words, dtype="<i4").tobytes()


def encoded_sizes(program: Program) -> tuple[int, list[int]]:
    """Bytes of the encoded program's header and of each descriptor (its length word and body), in order: what
    is read before the image and before each layer."""
    return 4 * _HEADER, [4 * (1 + len(_descriptor_body(d))) for d in program.descriptors]


def _descriptor_body(d: Descriptor) -> list[int]:
    body = [len(d.name), *map(ord, d.name), KINDS.index(d.kind), *d.in_shape, *d.out_shape, *d.kernel]
    body += [d.stride, d.padding, d.source, STORES.index(d.store), d.target, d.planes, d.k, d.j]
    body += [SCHEMES.index(d.scheme), MODES.index(d.mode), d.weight_offset, d.param_offset, d.k_source]
    body += [d.block_rows, len(d.operands)]
    for operand in d.operands:
        body += [operand.address, operand.planes, int(operand.signed)]
    return body + [len(d.candidates), *d.candidates]


def decode_program(data: bytes) -> Program:
    """The Program of an encoded one, validated; ProgramError (one line) for anything corrupt."""
    _require(len(data) % 4 == 0 and len(data) >= 4 * _HEADER, "not a nestmac program: too short or not int32 words")
    words = iter(np.frombuffer(data, dtype="<i4").tolist())
    header = [next(words) for _ in range(_HEADER)]
    _require(header[0] == MAGIC, "not a nestmac program (bad magic word)")
    _require(header[1] == PROGRAM_VERSION, f"program version {header[1]} is not {PROGRAM_VERSION}")
    descriptors = tuple(_decode_descriptor(_take(words, next(words, None))) for _ in range(header[14]))
    _require(next(words, None) is None, "the program has words after its last layer")
    return Program(*header[2:8], header[8], tuple(header[9:12]), header[12], header[13], descriptors)


def _take(words: Iterator[int], count: int | None) -> list[int]:
    """The next `count` words; a count larger than what is left is refused as it is read, never allocated."""
    _require(count is not None and count >= 0, "the program is truncated")
    body = list(itertools.islice(words, count))
    _require(len(body) == count, "the program is truncated")
    return body


def _enum(options: tuple[str, ...], index: int, what: str) -> str:
    _require(0 <= index < len(options), f"program field {what} is {index}, expected 0..{len(options) - 1}")
    return options[index]


def _decode_descriptor(body: list[int]) -> Descriptor:
    _require(
        len(body) >= 1 and 0 <= body[0] <= 255 and len(body) >= 1 + body[0] + _FIELDS, "a program layer is truncated"
    )
    name_length = body[0]
    _require(all(32 <= c < 0x110000 for c in body[1 : 1 + name_length]), "a program layer's name is not text")
    name = "".join(map(chr, body[1 : 1 + name_length]))
    f = body[1 + name_length :]
    count = f[_FIELDS - 1]
    end = _FIELDS + 3 * count  # the candidate count's index
    _require(
        count >= 0 and len(f) > end and f[end] >= 0 and len(f) == end + 1 + f[end],
        f"program layer {name}: its length disagrees with its fields",
    )
    operands = tuple(Operand(f[i], f[i + 1], bool(f[i + 2])) for i in range(_FIELDS, end, 3))
    _require(all(f[i + 2] in (0, 1) for i in range(_FIELDS, end, 3)), f"program layer {name}: a bad operand sign")
    return Descriptor(
        name,
        _enum(KINDS, f[0], "kind"),
        tuple(f[1:4]),
        tuple(f[4:7]),
        tuple(f[7:9]),
        f[9],
        f[10],
        f[11],
        _enum(STORES, f[12], "store"),
        f[13],
        f[14],
        f[15],
        f[16],
        _enum(SCHEMES, f[17], "scheme"),
        _enum(MODES, f[18], "mode"),
        f[19],
        f[20],
        operands,
        f[21],
        tuple(f[end + 1 :]),
        f[22],
    )
