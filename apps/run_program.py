"""apps.run --program: the test set through the program engine (hw/program_engine.py) instead of GEMM commands.

Each policy's network is compiled into a layer program (contract.program) for an engine with a scratchpad of
`--act-kib` KiB, checked to fit before anything runs, and costed per image by sim.program_cost: the program's
cycles (sim.program_cycles, exact), no host work, and energy with the scratchpad's reads and writes; a
dynamic policy's images each at the k they chose (the argmax runs on chip), its per-step figures their mean.
Outputs are the batched integer path's, which the program equals bit for bit. Programs run one image at a
time, so `--batch` must be 1.
"""

from __future__ import annotations

import dataclasses
import math

from contract.cli import InputError
from contract.config import EngineConfig
from contract.policy import ResolvedPolicy
from contract.program import Program, ProgramLimits, check_fits, compile_program
from sim.program_cost import ProgramCost


def program_setup(args, export, cfg: EngineConfig, chosen: list[ResolvedPolicy]) -> tuple[EngineConfig, ProgramLimits]:
    """The program engine for this run (the GEMM engine widened to the programs' commands) and its limits;
    InputError (one line) for a flag or a network that a program cannot run, before anything is written."""
    if args.batch != 1:
        raise InputError("--program runs one image at a time: use --batch 1")
    if args.rtl:
        raise InputError("--rtl does not run programs yet: run --program without it (rtl_tests/ run them)")
    limits = ProgramLimits.from_kib(args.act_kib, cfg.rows, export.act_bits)
    programs = [compile_program(export, cfg.rows, cfg.cols, limits.words, policy)[0] for policy in chosen]
    wide = cfg
    for program in programs:  # every program's commands (K counts whole channel groups), for the one engine
        needed = program.gemm_limits()
        wide = dataclasses.replace(wide, **{key: max(getattr(wide, key), value) for key, value in needed.items()})
    for program in programs:
        check_fits(program, limits, dict(max_m=wide.max_m, max_k=wide.max_k, max_n=wide.max_n))
    return wide, limits


def program_layers(cfg: EngineConfig, export, program: Program, cost: ProgramCost) -> list[dict]:
    """Per step of the program (the image, then each layer), its figures per inference in apps.run_layers'
    keys; the bytes are those entering or leaving the engine (the image's codes, each layer's weight and
    parameter images, the logits; no activations, which stay on chip), and the scratchpad's words read and
    bytes written beside them."""
    layers = [*export.layers, *(controller.layer for controller in export.controllers)]
    shapes = {layer.name: list(layer.gemm_shape()) for layer in layers}
    param_bytes = (cfg.acc_bits + cfg.mult_bits + cfg.shift_bits) / 8
    image_bytes = math.prod(program.input_shape) * cfg.act_bits / 8
    streamed = [dict(activations=image_bytes, weights=0.0, parameters=0.0, results=0.0)]
    for d in program.descriptors:
        streamed.append(
            dict(
                activations=0.0,
                weights=d.weight_codes(cfg.rows, cfg.cols) * cfg.base_bits / 8,
                parameters=d.param_rows(cfg.cols) * param_bytes,
                results=d.out_shape[0] * cfg.acc_bits / 8 if d.store == "logits" else 0.0,
            )
        )
    return [
        {
            "name": step.name,
            "gemm": shapes.get(step.name, [0, 0, 0]),
            "commands_per_inference": 0 if step.name == "input" else 1,
            "cycles_per_inference": step.cycles,
            "macs_per_inference": step.macs,
            "mac_utilisation": step.macs / (step.cycles * cfg.pe_count),
            "energy_nj_per_inference": step.energy.total / 1000,
            "bytes_per_inference": bytes_,
            "scratchpad_words_read": step.scratchpad_reads,
            "scratchpad_bytes_written": step.scratchpad_write_bits / 8,
        }
        for step, bytes_ in zip(cost.steps, streamed, strict=True)
    ]


def external_memory(cfg: EngineConfig, program: Program, cost: ProgramCost, table) -> dict:
    """The program's external-memory traffic per inference (sim.memory_traffic: bit-plane weights at each
    layer's k, a controlled layer's at its largest candidate, a bound; on the default bus) and its energy split
    into engine, on-chip memories and DRAM (DRAM only when the energy table prices it: format 2)."""
    from sim.memory_traffic import memory_energy, memory_traffic

    traffic = memory_traffic(cfg, program)
    energy = memory_energy(cost, traffic, table).as_dict() if table.dram_access is not None else None
    return {
        "bus_bytes": traffic.bus.bus_bytes,
        "bytes_per_inference": traffic.stream_bytes(),
        "bus_bound_cycles": traffic.cycles,
        "energy_nj": None if energy is None else {part: value / 1000 for part, value in energy.items()},
    }


def print_external_memory(label: str, memory: dict) -> None:
    streams = ", ".join(f"{name} {value:,}" for name, value in memory["bytes_per_inference"].items())
    print(
        f"k={label}: external memory on a {memory['bus_bytes']}-byte bus, bytes per inference: {streams}; "
        f"{memory['bus_bound_cycles']:,} cycles when the bus may be the bottleneck"
    )
    if memory["energy_nj"] is not None:
        split = memory["energy_nj"]
        print(
            f"  energy per inference: engine {split['engine']:.1f} nJ, on-chip memories {split['onchip']:.1f} nJ, "
            f"DRAM {split['dram']:.1f} nJ, total {split['total']:.1f} nJ"
        )


def print_program_layers(label: str, layers: list[dict], clock_mhz: float) -> None:
    print(f"k={label}: per step of the program (no host work between layers)")
    print(f"  {'step':<24} {'cycles':>9} {'us':>8} {'MAC util %':>10} {'nJ':>9} {'SP reads':>9} {'SP KB written':>13}")
    for row in layers:
        print(
            f"  {row['name']:<24} {row['cycles_per_inference']:9.0f} {row['cycles_per_inference'] / clock_mhz:8.2f} "
            f"{100 * row['mac_utilisation']:10.1f} {row['energy_nj_per_inference']:9.1f} "
            f"{row['scratchpad_words_read']:9.0f} {row['scratchpad_bytes_written'] / 1024:13.2f}"
        )
