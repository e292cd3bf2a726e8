"""The activation scratchpad of layer programs: `depth` words of R lanes of A-bit activation codes.

A word is one R-wide activation row, the unit the array takes per cycle, so the address generator reads one
word per cycle (contract.program, "Scratchpad"). The output path writes part of a word: a result row of an
N-tile covers the lanes lo..hi-1 of each channel group it touches (`sim.program.writes`), and the other lanes
of that word hold other channels (or nothing yet), so the write port has one enable per lane. The size of a
scratchpad in words is its bytes * 8 / (R * A): 16 KiB at R = 16, A = 8 is 1024 words.

The memory is `amaranth.lib.memory.Memory`, with one synchronous read port (the word addressed in one cycle
is on `read.data` in the next, held while `read.en` is low), optionally a second one (`operand_read`, the
output path's, which reads a fused add's operands while the activation fetch reads the next rows: a 2R1W
memory, on an FPGA two block RAMs with the same writes), and one write port; the ports are the memory's
own, so `wiring.connect` joins them to a reader and a writer. A read of the word being written in the same
cycle returns the old word (not transparent): the compiler never lets a layer write a map it reads.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from contract.config import EngineConfig


def word_layout(cfg: EngineConfig) -> data.ArrayLayout:
    """One scratchpad word: lane l holds the A-bit code of channel g*R + l of its channel group g."""
    return data.ArrayLayout(unsigned(cfg.act_bits), cfg.rows)


def read_signature(cfg: EngineConfig, depth: int) -> ReadPort.Signature:
    """The scratchpad's read port as the memory has it (`flipped` on a reader)."""
    return ReadPort.Signature(addr_width=ceil_log2(depth), shape=word_layout(cfg))


class Scratchpad(wiring.Component):
    """`depth` words of R activation codes, one word read and one (lanes of one) written per cycle.

    Parameters
    ----------
    cfg : EngineConfig
        The engine whose rows R are a word's lanes and whose act_bits A are a lane's width.
    depth : int
        Words of the scratchpad.

    Members
    -------
    read : Out(ReadPort.Signature(ceil_log2(depth), word))
        The read port: `addr` and `en` in one cycle, the word on `data` in the next (held while `en` is low).
    operand_read : Out(ReadPort.Signature(ceil_log2(depth), word))
        With `operand_port`: a second read port like `read`.
    write : Out(WritePort.Signature(ceil_log2(depth), word, granularity=1))
        The write port: `data`'s lanes whose bit of `en` is set are written at `addr`, the others kept.
    """

    def __init__(self, cfg: EngineConfig, depth: int, *, operand_port: bool = False):
        self._word, self._depth = word_layout(cfg), depth
        readers = ("read", "operand_read") if operand_port else ("read",)
        super().__init__(
            {name: Out(read_signature(cfg, depth)) for name in readers}
            | {"write": Out(WritePort.Signature(addr_width=ceil_log2(depth), shape=self._word, granularity=1))}
        )
        self._readers = readers

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = memory = Memory(shape=self._word, depth=self._depth, init=[])
        for name in self._readers:
            wiring.connect(m, wiring.flipped(getattr(self, name)), memory.read_port())
        wiring.connect(m, wiring.flipped(self.write), memory.write_port(granularity=1))
        return m
