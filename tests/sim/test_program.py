"""Layer programs (contract.program) run by their reference executor (sim.program) against golden's integer path.

The program's logits must equal golden's bit for bit: that proves the scratchpad layout, the implicit im2col
(weight rows permuted to the address generator's K order), the raw regions and the fused residual adds. The
scratchpad starts as random codes, so no result can depend on a word or lane the program never wrote. The
address generator's properties are checked on random shapes, as its formal properties will be on the HDL.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch
from torch import nn

from contract.policy import Policy, ResolvedPolicy
from contract.program import (
    MAGIC,
    PROGRAM_VERSION,
    Descriptor,
    ProgramError,
    compile_program,
    decode_program,
    encode_program,
    m_block_rows,
    map_words,
    raw_bits,
    signed_bits,
    weight_rows,
)
from golden.convert import build_net, convert
from golden.data import digits_split, input_codes
from golden.dynamic import attach_controller, fast_dynamic_logits
from golden.export import build_export
from golden.fastpath import fast_logits
from golden.infer import run_integer
from golden.layers import QuantSpec
from golden.lowering import host_requantize, im2col
from golden.nested import int_gemm, requantize, truncate_weight
from golden.train import calibrate_batchnorm
from sim.program import reads, run_program, writes
from verif.program_steps import layer_step

SEED = 0
WORDS = 4096


@pytest.fixture(scope="module")
def digits():
    return digits_split()


@pytest.fixture(scope="module")
def digits_export(trained):
    return build_export(trained("truncquant", "offset"))


@pytest.fixture(scope="module")
def resnet_export(digits):
    """A ResNet-20 on the 8x8 digits (two 1x1 projections whose adds read two raw convolutions), twos scheme,
    its BatchNorms calibrated on training images so that its activations vary."""
    torch.manual_seed(SEED)
    model = build_net("resnet20", QuantSpec("truncquant", "twos"), (1, 8, 8))
    calibrate_batchnorm(model, digits.train_x[:256], 64)
    return build_export(model.eval())


def run(export, codes, ks, rows, cols, seed=SEED):
    policy = (Policy("uniform", (ks,)) if isinstance(ks, int) else Policy("static", tuple(ks))).resolve(export)
    program, images = compile_program(export, rows, cols, WORDS, policy)
    return program, run_program(program, images, codes, np.random.default_rng(seed))


def static_ks(export) -> list[int]:
    """A per-layer policy that visits many precisions."""
    return [8 - 3 * i % 8 for i in range(len(export.layers))]


def check_digits(export, codes, rows, cols, precisions):
    for ks in precisions:
        _, result = run(export, codes, ks, rows, cols)
        golden = fast_logits(export, codes, ks)
        mismatches = int((result.logits != golden).any(dim=1).sum())
        assert mismatches == 0, f"k={ks} {rows}x{cols}: {mismatches} images differ from golden (seed {SEED})"


def test_digits_images_run_through_the_program_bit_for_bit(digits_export, digits):
    codes = input_codes(digits.test_x[:60], digits_export.act_bits)
    check_digits(digits_export, codes, 8, 4, [8, 1, static_ks(digits_export)])
    check_digits(digits_export, codes, 16, 16, [3])


@pytest.mark.slow
@pytest.mark.parametrize("rows, cols", [(8, 4), (16, 16)])
def test_the_digits_test_set_runs_through_the_program_bit_for_bit(digits_export, digits, rows, cols):
    codes = input_codes(digits.test_x, digits_export.act_bits)
    check_digits(digits_export, codes, rows, cols, [*range(8, 0, -1), static_ks(digits_export)])


def check_resnet(export, codes, precisions):
    for ks in precisions:
        program, result = run(export, codes, ks, 8, 4, seed=SEED + 1)
        golden = run_integer(export, codes, ks)[0]
        assert torch.equal(result.logits, golden), f"k={ks}: the program's logits differ from golden (seed {SEED})"
        assert len(set(golden.argmax(dim=1).tolist())) >= 2, "degenerate logits: the comparison shows nothing"
    return program, result


def test_a_resnet_with_fused_adds_and_raw_operands_runs_bit_for_bit(resnet_export, digits):
    codes = input_codes(digits.test_x[:8], resnet_export.act_bits)
    program, result = check_resnet(resnet_export, codes, [8, 2, static_ks(resnet_export)])
    raw = [d for d in program.descriptors if d.store == "raw"]
    fused = [d for d in program.descriptors if d.operands]
    assert len(raw) == 2 and all(d.planes >= 2 for d in raw), "the two 1x1 projections' adds store a raw conv"
    assert len(fused) == 9 and sum(o.signed for d in fused for o in d.operands) == 2
    assert result.traffic["act"] == 0
    stored = sum(d.planes * d.plane_words(8) for d in program.descriptors if d.store != "logits")
    assert program.words_used < stored, "liveness reuses the scratchpad"
    assert decode_program(encode_program(program)) == program


@pytest.mark.slow
def test_the_resnet_runs_bit_for_bit_at_every_k(resnet_export, digits):
    codes = input_codes(digits.test_x[:40], resnet_export.act_bits)
    check_resnet(resnet_export, codes, [*range(8, 0, -1), [1 + i % 8 for i in range(len(resnet_export.layers))]])


def test_the_permuted_k_order_gives_the_lowerings_sums_even_when_they_wrap():
    """The implicit im2col's K order (ky, kx, g, lane) against the lowering's (c_in, kh, kw): equal outputs at
    a 10-bit accumulator, where many sums wrap (the reduction is exact and happens once, at the end)."""
    rng = np.random.default_rng(SEED)
    for trial in range(20):
        rows, channels, size, kernel, stride, padding, n = (int(v) for v in rng.integers(1, 7, 7))
        kernel, stride, padding = min(kernel, 3), min(stride, 2), min(padding, kernel - 1)
        size = max(size, kernel)
        codes = rng.integers(0, 256, (1, channels, size, size))
        weights = rng.integers(0, 256, (channels * kernel * kernel, n))
        expected = int_gemm(
            im2col(torch.from_numpy(codes), kernel, stride, padding), weights, 8, 8, "twos", acc_bits=10
        )
        d = _descriptor((channels, size, size), n, kernel, stride, padding)
        memory = np.zeros((map_words(d.in_shape, rows), rows), dtype=np.int64)
        for c in range(channels):
            memory[(c // rows) * size * size : (c // rows + 1) * size * size, c % rows] = codes[0, c].reshape(-1)
        order = weight_rows(d.in_shape, d.kernel, rows)
        x = np.zeros((d.out_shape[1] * d.out_shape[2], order.size), dtype=np.int64)
        for read in (r for r in reads(d, rows, 1) if r.n_tile == 0 and r.address is not None):
            x[read.row, read.k_tile * rows : read.k_tile * rows + read.lanes] = memory[
                read.address - d.source, : read.lanes
            ]
        permuted = np.where(order[:, None] >= 0, weights[np.maximum(order, 0)], 0)
        got = int_gemm(x, permuted, 8, 8, "twos", acc_bits=10)
        assert torch.equal(got, expected), f"trial {trial} (seed {SEED}): the permuted GEMM differs"


def _descriptor(in_shape, n, kernel, stride, padding, kind="conv") -> Descriptor:
    if kind == "linear":
        out_shape, kernel, stride, padding = (n, 1, 1), in_shape[1:], 1, 0
    else:
        side = [(s + 2 * padding - kernel) // stride + 1 for s in in_shape[1:]]
        out_shape, kernel = (n, *side), (kernel, kernel)
    return Descriptor(
        "x", kind, in_shape, out_shape, kernel, stride, padding, 5, "codes", 0, 1, 8, 8, "twos", "relu", 0, 0
    )


def test_every_read_is_in_its_map_or_padding_and_every_output_is_written_once():
    rng = random.Random(SEED)
    for trial in range(200):
        rows, cols = rng.randint(1, 8), rng.randint(1, 8)
        channels, size, n = rng.randint(1, 20), rng.randint(1, 9), rng.randint(1, 20)
        kernel, stride, padding = rng.choice((1, 3)), rng.choice((1, 2)), rng.choice((0, 1))
        if kernel > size + 2 * padding:
            continue
        kind = "linear" if trial % 5 == 0 else "conv"
        d = _descriptor((channels, size, size), n, kernel, stride, padding, kind)
        where = f"trial {trial} (seed {SEED}): {d}, R={rows} C={cols}"
        groups, (kh, kw), (_, out_h, out_w) = d.groups(rows), d.kernel, d.out_shape
        seen = []
        for read in reads(d, rows, cols):
            seen.append(read[:3])
            tap, group = divmod(read.k_tile, groups)
            oy, ox = divmod(read.row, out_w)
            y, x = oy * d.stride - d.padding + tap // kw, ox * d.stride - d.padding + tap % kw
            inside = 0 <= y < size and 0 <= x < size
            assert (read.address is not None) == inside, where
            if inside:
                assert read.address == d.source + (group * size + y) * size + x, where
                assert d.source <= read.address < d.source + map_words(d.in_shape, rows), where
                assert read.lanes == min(rows, channels - group * rows) >= 1, where
        tiles = d.n_tiles(cols) * d.k_tiles(rows) * out_h * out_w
        assert sorted(seen) == [
            (a, b, c) for a in range(d.n_tiles(cols)) for b in range(kh * kw * groups) for c in range(out_h * out_w)
        ]
        assert len(seen) == tiles, where
        written = []
        for write in writes(d, rows, cols):
            group = write.channel // rows
            assert write.channel == group * rows + write.lo and 0 <= write.lo < write.hi <= rows, where
            assert write.offset == (group * out_h + write.row // out_w) * out_w + write.row % out_w, where
            assert write.channel // cols == write.n_tile, where
            written += [(write.channel + lane, write.row) for lane in range(write.hi - write.lo)]
        assert sorted(written) == [(c, p) for c in range(n) for p in range(out_h * out_w)], where


def test_m_blocks_partition_a_layers_reads_and_writes_by_output_rows():
    """A layer's M-blocks (whole output rows, the fewest for max_m, as even as they can be) read and write
    exactly what the whole layer does: the same (N-tile, K-tile, pixel) reads of the same words, each block's
    rows counted from its first pixel."""
    rng = random.Random(SEED)
    for trial in range(100):
        rows, cols = rng.randint(1, 8), rng.randint(1, 8)
        size, kernel, stride = rng.randint(3, 12), rng.choice((1, 3)), rng.choice((1, 2))
        d = _descriptor((rng.randint(1, 20), size, size), rng.randint(1, 20), kernel, stride, kernel // 2)
        _, out_h, out_w = d.out_shape
        max_m = rng.randint(out_w, out_h * out_w)
        d = dataclasses.replace(d, block_rows=m_block_rows(d, max_m))
        where = f"trial {trial} (seed {SEED}): {d}, max_m {max_m}"
        blocks = d.blocks()
        assert [first for first, _ in blocks] == list(range(0, out_h, blocks[0][1])), where
        assert sum(h for _, h in blocks) == out_h and max(h for _, h in blocks) * out_w <= max_m, where
        assert len(blocks) == -(-out_h // (max_m // out_w)), where  # the fewest blocks of whole rows
        assert max(h for _, h in blocks) - min(h for _, h in blocks) < len(blocks), where
        for walk in (reads, writes):
            blocked = [
                item._replace(row=item.row + first * out_w)
                for first, height in blocks
                for item in walk(d, rows, cols, (first, height))
            ]
            assert sorted(blocked) == sorted(walk(d, rows, cols)), f"{walk.__name__} {where}"


def test_a_resnet_in_m_blocks_runs_bit_for_bit(resnet_export, digits):
    """The 8x8 ResNet on an accumulator of 4 rows: its stem and first stage (4x4 maps, M = 16) run as 4 blocks of
    one output row, the later stages whole; the logits are golden's. A block wider than max_m is refused."""
    codes = input_codes(digits.test_x[:4], resnet_export.act_bits)
    for ks in (2, static_ks(resnet_export)):
        policy = (Policy("uniform", (ks,)) if isinstance(ks, int) else Policy("static", tuple(ks))).resolve(
            resnet_export
        )
        program, images = compile_program(resnet_export, 8, 4, WORDS, policy, 4)
        assert program.gemm_limits()["max_m"] == 4
        assert sum(len(d.blocks()) == 4 for d in program.descriptors) == 7
        result = run_program(program, images, codes, np.random.default_rng(SEED))
        golden = run_integer(resnet_export, codes, ks)[0]
        assert torch.equal(result.logits, golden), f"k={ks}: the blocked program's logits differ (seed {SEED})"
    assert decode_program(encode_program(program)) == program
    with pytest.raises(ProgramError, match="M-blocks of 1 output rows, which the program engine's hardware"):
        layer_step(program, program.descriptors[0])
    with pytest.raises(ProgramError, match=r"layer stem_0: one output row of 4 pixels exceeds max_m = 3"):
        compile_program(resnet_export, 8, 4, WORDS, Policy("uniform", (8,)).resolve(resnet_export), 3)


def test_a_scratchpad_too_small_is_refused_naming_the_layer_and_the_words(digits_export):
    policy = Policy("uniform", (8,)).resolve(digits_export)
    program, _ = compile_program(digits_export, 8, 8, WORDS, policy)
    needed = program.words_used
    message = (
        rf"does not fit the scratchpad: at layer \w+ it needs {needed} words of 8 codes "
        rf"\({needed} for the whole program\), the scratchpad has "
    )
    with pytest.raises(ProgramError, match=rf"{message}{needed - 1}$"):
        compile_program(digits_export, 8, 8, needed - 1, policy)
    assert compile_program(digits_export, 8, 8, needed, policy)[0].words_used == needed


class WideKernel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 9), nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_a_layer_the_address_generator_cannot_do_is_refused():
    export = build_export(convert(WideKernel(), QuantSpec("truncquant", "offset"), (1, 12, 12)).eval())
    with pytest.raises(ProgramError, match=r"layer conv: kernel 9, stride 1, padding 0 is outside what the address"):
        compile_program(export, 8, 8, WORDS, Policy("uniform", (8,)).resolve(export))


@pytest.fixture(scope="module")
def dynamic_export(digits):
    """The ResNet of `resnet_export` with an untrained controller (reading the stem, choosing k among 2, 4, 8
    for every other layer), centred on training images so that different images choose differently."""
    torch.manual_seed(SEED)
    model = build_net("resnet20", QuantSpec("truncquant", "twos"), (1, 8, 8))
    calibrate_batchnorm(model, digits.train_x[:256], 64)
    attach_controller(model, 3.0, (2, 4, 8), seed=1, k=6, images=digits.train_x[:256])
    return build_export(model.eval())


def test_a_dynamic_policy_runs_bit_for_bit_with_the_argmax_on_chip(dynamic_export, digits):
    """The controller's decision store and the controlled layers' chosen k give golden.dynamic's logits, image by
    image, with many different k vectors among the images; the program round-trips through its encoding."""
    export = dynamic_export
    controller = export.controllers[0]
    policy = Policy("dynamic", budget=3.0).resolve(export)
    program, images = compile_program(export, 8, 4, WORDS, policy)
    decision = [d for d in program.descriptors if d.store == "decision"]
    assert [d.name for d in decision] == [controller.name] and decision[0].decisions() == len(controller.controls)
    controlled = [d for d in program.descriptors if d.k_source]
    assert [d.name for d in controlled] == list(controller.controls)
    assert all(d.param_rows(4) == 3 * d.n_tiles(4) * 4 for d in controlled)  # a block per candidate
    assert decode_program(encode_program(program)) == program
    codes = input_codes(digits.test_x[:40], export.act_bits)
    run = run_program(program, images, codes, np.random.default_rng(SEED))
    golden, ks = fast_dynamic_logits(export, codes, controller)
    assert torch.equal(run.logits, golden), f"the program's logits differ from golden.dynamic's (seed {SEED})"
    columns = [i for i, d in enumerate(program.descriptors) if d.store != "decision"]
    assert np.array_equal(run.ks[:, columns], ks.numpy()), "each image ran each layer at golden's chosen k"
    assert len({tuple(row) for row in ks.tolist()}) > 10, "the images must choose differently"


def test_a_controller_reading_a_fusing_layer_is_refused(dynamic_export):
    controller = dataclasses.replace(dynamic_export.controllers[0], reads="blocks_0_conv2")
    with pytest.raises(ProgramError, match="reads blocks_0_conv2, whose output a program keeps only as its add's"):
        compile_program(dynamic_export, 8, 4, WORDS, ResolvedPolicy(Policy("dynamic"), controller=controller))


def _corrupt(words: np.ndarray, index: int, value: int) -> bytes:
    words = words.copy()
    words[index] = value
    return words.tobytes()


def test_a_corrupt_program_is_refused_with_one_line(resnet_export):
    program, images = compile_program(resnet_export, 8, 4, WORDS, Policy("uniform", (4,)).resolve(resnet_export))
    data = encode_program(program)
    words = np.frombuffer(data, dtype="<i4")
    first = 15 + 2 + len(program.descriptors[0].name)  # header, length, name length, name: then the fields
    second = 15 + 1 + words[15]
    cases = [
        (data[:20], "too short"),
        (data[:-4], "truncated"),
        (_corrupt(words, 15, 2**31 - 1), "truncated"),  # a huge name length is refused, never allocated
        (data + data[-4:], "words after its last layer"),
        (_corrupt(words, 0, MAGIC + 1), "bad magic"),
        (_corrupt(words, 1, PROGRAM_VERSION + 1), f"program version {PROGRAM_VERSION + 1} is not {PROGRAM_VERSION}"),
        (_corrupt(words, 7, 10), "outside the scratchpad of 10 words"),
        (_corrupt(words, first + 13, WORDS - 1), r"its output at word 4095 .* is outside the scratchpad"),
        (_corrupt(words, first + 1, 2), r"layer 0 \(stem_0\): reads no \[C, H, W\] = \[2, 8, 8\] code map at word 0"),
        (_corrupt(words, first + 4, 17), r"layer 1 \(blocks_0_conv1\): reads no \[C, H, W\] = \[16, 4, 4\]"),
        (_corrupt(words, first + 14, 2), "2 planes for a codes store"),
        (_corrupt(words, first + 23, 1), "its length disagrees with its fields"),
        (_corrupt(words, first + 22, 5), r"5 output rows per M-block, expected 0..4"),
        (_corrupt(words, first + 21, 1), "only a decision store or a controlled layer has candidates|candidates"),
        (_corrupt(words, first + 5, 5), "does not follow from its input"),
        (_corrupt(words, first + 15, 9), r"k 9 or j 8 outside"),
        (_corrupt(words, first + 12, 7), "store is 7"),
        (_corrupt(words, first + 19, program.weight_length), "its weights at"),
        (_corrupt(words, second + 2 + len(program.descriptors[1].name) + 11, 200), "reads no .* code map at word 200"),
    ]
    for corrupt, message in cases:
        with pytest.raises(ProgramError, match=message):
            decode_program(corrupt)
    bad = dataclasses.replace(images, weights=images.weights[:-1])
    with pytest.raises(ProgramError, match="the images hold"):
        run_program(program, bad, np.zeros((1, 1, 8, 8), dtype=np.int64))


def test_a_program_that_cannot_be_encoded_cannot_be_built(resnet_export):
    """Every Program encodes and decodes: a layer name the encoding cannot hold is refused when it is built."""
    program, _ = compile_program(resnet_export, 8, 4, WORDS, Policy("uniform", (4,)).resolve(resnet_export))
    assert decode_program(encode_program(program)) == program
    first = program.descriptors[0]
    for name in ("x" * 256, "tab\there", ""):
        renamed = (dataclasses.replace(first, name=name), *program.descriptors[1:])
        with pytest.raises(ProgramError, match="name must be 1..255 printable characters"):
            dataclasses.replace(program, descriptors=renamed)


class SharedOperand(nn.Module):
    """An add whose latest operand (b) is also read by a convolution: no output path can run it alone."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        a = torch.relu(self.a(x))
        b = torch.relu(self.b(a))
        return self.fc(torch.flatten(torch.relu(torch.relu(a + b) + torch.relu(self.c(b))), 1))


def test_an_add_no_output_path_can_run_is_refused():
    export = build_export(convert(SharedOperand(), QuantSpec("truncquant", "offset"), (1, 8, 8)).eval())
    with pytest.raises(ProgramError, match=r"add \w+: its latest operand b is not a layer read by this add alone"):
        compile_program(export, 8, 8, WORDS, Policy("uniform", (8,)).resolve(export))


def test_a_raw_regions_width_is_the_exact_worst_case(resnet_export):
    """raw_bits is reached: per column, the input that is 2^A - 1 where the weight is positive (negative) and 0
    elsewhere gives the greatest (least) t, and the widest u over those inputs is raw_bits' width; random inputs
    stay within it. Checked at the exported shifts and at small ones that make u wide, at k = 8 and 1."""
    export = resnet_export
    A, B, ACC = export.act_bits, export.base_bits, export.acc_bits
    raw = [layer for layer in export.layers if layer.mode == "raw"]
    rng = np.random.default_rng(SEED)
    top = (1 << A) - 1
    for layer in raw + [dataclasses.replace(layer, shift=layer.shift % 5) for layer in raw]:
        for k in (8, 1):
            bias, mult, shift = (torch.from_numpy(p) for p in layer.requant(k))
            w = truncate_weight(layer.weight_codes, k, export.scheme, B)
            extremes = torch.cat([(w.T > 0) * top, (w.T < 0) * top]).numpy()
            random_x = rng.integers(0, top + 1, (64, layer.K))
            widths = []
            for x in (extremes, random_x):
                acc = int_gemm(x, layer.weight_codes, k, A, export.scheme, B, A, ACC)
                u = host_requantize(requantize(acc, bias, mult, shift, "raw", A, ACC), mult, shift)  # unwrapped
                widths.append(max(signed_bits(int(u.min())), signed_bits(int(u.max()))))
            assert widths[0] == raw_bits(layer, k, export) >= widths[1], (layer.name, k, widths)
