"""Integer-only inference of an export with the golden reference: int_gemm + requantize per layer.

This is what the engine must reproduce bit for bit. No float touches the activations: the input is A-bit
codes, every hidden layer emits A-bit codes, and the last layer emits ACC-bit raw logits whose argmax is
the prediction (their real scale Sx * Sw(k) is positive, so it does not change the argmax).
"""

from __future__ import annotations

import torch

from contract.model_format import Export
from golden.lowering import Gemm, LayerRun, lower
from golden.nested import int_gemm, requantize


def execute_golden(gemm: Gemm) -> torch.Tensor:
    acc = int_gemm(
        gemm.act_codes, gemm.weight_codes, gemm.k, gemm.j, gemm.scheme, gemm.base_bits, gemm.act_bits, gemm.acc_bits
    )
    return requantize(acc, gemm.bias, gemm.mult, gemm.shift, gemm.mode, gemm.act_bits, gemm.acc_bits)


def layer_gemms(export: Export, act_codes, k, j: int | None = None) -> list[LayerRun]:
    """Every layer's GEMM (one per group of a grouped convolution) with its golden output: the reference a
    hardware run is checked against. k is one weight precision for all layers or one per GEMM layer in
    execution order; residual adds and poolings run on the host between the GEMMs (golden.lowering)."""
    return lower(export, act_codes, k, j, execute_golden)


def run_integer(export: Export, act_codes, k, j: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(raw logits t [batch, classes], every GEMM's output [M, N]) for input codes [batch, C, H, W]."""
    outputs = [run.output for run in layer_gemms(export, act_codes, k, j)]
    return outputs[-1], outputs
