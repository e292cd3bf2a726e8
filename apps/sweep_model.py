"""What a trained model costs on each sweep point at each weight precision k: accuracy, cycles and energy.

These come from the golden integer path (accuracy on the digits test set, the same on every engine since the
digits compute exactly the truncation) and the cycle-exact event counts (sim.events, sim.energy), not from the
synthesis, so they are computed here in the client, for failed points too, in a second or two per sweep.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from apps.sweep_points import Point
from contract.config import EngineConfig
from contract.model_files import load_export
from golden.data import digits_split
from golden.evaluate import fraction_equal, integer_predictions
from sim.energy import gemms_energy
from sim.energy_table import EnergyTable
from sim.events import command_events, split_rows


class ModelCosts:
    """Per-(point, k) model figures for one golden.export model, energy priced with `energy_table`; the model's
    accuracy is computed once per k."""

    def __init__(self, export_dir: Path, energy_table: EnergyTable):
        self.export, self.energy_table = load_export(export_dir), energy_table
        split = digits_split()
        self.shapes = self.export.engine_shapes()
        self.macs = sum(m * k * n for m, k, n in self.shapes)
        self.accuracy = {
            k: fraction_equal(integer_predictions(self.export, split.test_x, k), split.test_y)
            for k in range(self.export.base_bits, 0, -1)
        }

    def precisions(self, point: Point) -> list[int]:
        """k = B..1 for a switchable engine of the model's B; B alone for the fixed engine (it computes every
        command at k = B) and for an engine of another B (the model does not run on it)."""
        if point.switchable and point.bits == self.export.base_bits:
            return list(range(point.bits, 0, -1))
        return [point.bits]

    def figures(self, point: Point, k: int) -> dict:
        """apps.sweep_table.MODEL_FIELDS of `point` at precision k ({} when the model does not run on it)."""
        if point.bits != self.export.base_bits:
            return {}
        cfg = EngineConfig.from_export(self.export, point.rows, point.cols, point.max_m, point.digit_bits)
        cfg = replace(cfg, switchable=point.switchable)
        energy = gemms_energy(cfg, self.shapes, k, table=self.energy_table)
        cycles = sum(
            command_events(cfg, *command, k).cycles for shape in self.shapes for command in split_rows(cfg, *shape)
        )
        return {
            "cycles_per_inference": cycles,
            "inferences_per_mcycle": round(1e6 / cycles, 3),
            "accuracy": round(self.accuracy[k], 4),
            "energy_nj": round(energy.total / 1000, 3),
            "pj_per_mac": round(energy.total / self.macs, 3),
            "energy_table": self.energy_table.name,
        } | {f"{name}_nj": round(value / 1000, 3) for name, value in energy.as_dict().items() if name != "total"}
