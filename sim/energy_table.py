"""The energy table: what each action costs in a technology, read from a data file a user can replace.

The prices sim.energy charges for the cycle-exact event counts live in a JSON file, in the manner of an
Accelergy energy reference table (ERT): a name, a technology, and for each action its energy, unit,
reference operand size, scaling rule and source. nestmac ships `energy_tables/horowitz-45nm.json`
(M. Horowitz, ISSCC 2014, 45 nm); `--energy-table FILE` prices the same events with another technology's
numbers, and every output that shows energy names the table it used. The format is in docs/estimates.md,
"Energy model".

The actions and their scaling to the widths and sizes the engine uses are fixed (each entry's "scaling"
names its rule, so a table written for another rule is refused instead of misread):

- multiply: energy x a_bits x b_bits / (reference a_bits x b_bits), the toggling partial-product bits;
- add: energy x bits / reference bits, a ripple of the width;
- sram_read: energy / reference word_bits per bit, x sqrt(size_bytes / reference size_bytes);
- register_bit: energy per flip-flop bit per clock, unscaled;
- dram_access: energy / reference word_bits per bit moved to or from external memory (format 2), unscaled by
  size: the off-chip traffic's price (sim.memory_traffic).

Format 2 added `dram_access`; a format 1 table (the four on-chip actions) still loads and prices everything
on chip as before, and only a DRAM figure asked of it is an error naming the missing action.

A table that is not exactly that (a missing or unknown key, a number that is not positive and finite, an
unknown unit) is one `error:` line naming the file and the entry, before any simulation.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from contract.cli import InputError, read_json

FORMAT_VERSION = 2  # 2: the dram_access action
#: The table shipped in the package, used wherever no other is named.
SHIPPED_TABLE = Path(__file__).with_name("energy_tables") / "horowitz-45nm.json"
#: Units an energy may be given in, as multiples of the pJ every figure is computed in.
UNITS_PJ = {"fJ": 1e-3, "pJ": 1.0, "nJ": 1e3}
#: Per action: its scaling rule and the reference sizes that rule scales from.
ACTIONS = {
    "multiply": ("a_bits * b_bits", ("a_bits", "b_bits")),
    "add": ("bits", ("bits",)),
    "sram_read": ("bits * sqrt(size_bytes)", ("word_bits", "size_bytes")),
    "register_bit": ("none", ()),
    "dram_access": ("bits", ("word_bits",)),
}
#: The actions each format version has: 1 lacks dram_access.
VERSION_ACTIONS = {1: tuple(ACTIONS)[:4], FORMAT_VERSION: tuple(ACTIONS)}
TOP_KEYS = {"version", "name", "technology", "description", "actions"}
ACTION_KEYS = {"energy", "unit", "reference", "scaling", "source"}


class EnergyTableError(InputError):
    """An energy table file that is not a valid table (sim.energy_table's format)."""


@dataclass(frozen=True)
class Action:
    energy_pj: float  # at the reference sizes
    reference: tuple[float, ...]  # ACTIONS' reference sizes, in their order
    source: str


@dataclass(frozen=True)
class EnergyTable:
    """A technology's action energies, in pJ, and where they came from; frozen and hashable, so a cost
    cached per command shape (sim.network.group_cost) is cached per table too."""

    name: str
    technology: str
    path: str
    sha256: str  # of the table's contents, so two tables under one name are told apart
    multiply: Action
    add: Action
    sram_read: Action
    register_bit: Action
    dram_access: Action | None = None  # None in a format 1 table
    version: int = FORMAT_VERSION

    def multiply_pj(self, a_bits: int, b_bits: int) -> float:
        ref_a, ref_b = self.multiply.reference
        return self.multiply.energy_pj * a_bits * b_bits / (ref_a * ref_b)

    def add_pj(self, bits: int) -> float:
        return self.add.energy_pj * bits / self.add.reference[0]

    def sram_bit_pj(self, size_bytes: float) -> float:
        word_bits, ref_bytes = self.sram_read.reference
        return self.sram_read.energy_pj / word_bits * math.sqrt(size_bytes / ref_bytes)

    @property
    def register_bit_pj(self) -> float:
        return self.register_bit.energy_pj

    def dram_bit_pj(self) -> float:
        """One bit read from or written to external memory; EnergyTableError for a format 1 table (no price)."""
        if self.dram_access is None:
            raise EnergyTableError(
                f"{self.path}: energy table {self.name} (format version {self.version}) has no dram_access price; "
                f"add one (format {FORMAT_VERSION}, docs/estimates.md) to price external memory"
            )
        return self.dram_access.energy_pj / self.dram_access.reference[0]

    def identity(self) -> dict[str, str]:
        """What a result records about the prices it used: the table's name, file and contents' digest."""
        return {"name": self.name, "technology": self.technology, "path": self.path, "sha256": self.sha256}


def load_energy_table(path: str | Path) -> EnergyTable:
    """The table in `path`, checked entry by entry; EnergyTableError (one line) for anything else."""
    path = Path(path)
    data = read_json(path)
    where = str(path)
    table = _mapping(data, where, "the table", TOP_KEYS)
    version = table["version"]
    if type(version) is not int or version not in VERSION_ACTIONS:  # not true, not 1.0
        raise EnergyTableError(
            f"{where}: version {version!r} is not supported (expected {' or '.join(map(str, VERSION_ACTIONS))})"
        )
    for key in ("name", "technology", "description"):
        _text(table[key], where, key)
    names = VERSION_ACTIONS[version]
    actions = _mapping(table["actions"], where, "actions", set(names))
    return EnergyTable(
        name=table["name"],
        technology=table["technology"],
        path=str(path.resolve()),
        sha256=hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest(),
        version=version,
        **{name: _action(actions[name], where, name) for name in names},
    )


def _action(entry: object, where: str, name: str) -> Action:
    scaling, reference_keys = ACTIONS[name]
    entry = _mapping(entry, where, f"actions.{name}", ACTION_KEYS)
    unit = entry["unit"]
    if unit not in UNITS_PJ:
        raise EnergyTableError(f"{where}: actions.{name}.unit must be one of {', '.join(UNITS_PJ)}, got {unit!r}")
    if entry["scaling"] != scaling:
        raise EnergyTableError(
            f"{where}: actions.{name}.scaling must be {scaling!r} (the rule nestmac applies), got {entry['scaling']!r}"
        )
    _text(entry["source"], where, f"actions.{name}.source")
    reference = _mapping(entry["reference"], where, f"actions.{name}.reference", set(reference_keys))
    return Action(
        _positive(entry["energy"], where, f"actions.{name}.energy") * UNITS_PJ[unit],
        tuple(_positive(reference[key], where, f"actions.{name}.reference.{key}") for key in reference_keys),
        entry["source"],
    )


def _mapping(value: object, where: str, what: str, keys: set[str]) -> dict:
    """`value` as an object with exactly `keys`."""
    if not isinstance(value, dict):
        raise EnergyTableError(f"{where}: {what} must be a JSON object, got {type(value).__name__}")
    missing, unknown = sorted(keys - value.keys()), sorted(value.keys() - keys)
    if missing:
        raise EnergyTableError(f"{where}: {what} lacks {', '.join(missing)}")
    if unknown:
        raise EnergyTableError(
            f"{where}: {what} has unknown key {', '.join(unknown)} (expected {', '.join(sorted(keys))})"
        )
    return value


def _positive(value: object, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise EnergyTableError(f"{where}: {what} must be a positive finite number, got {value!r}")
    return value


def _text(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EnergyTableError(f"{where}: {what} must be a non-empty string, got {value!r}")
    return value


#: The shipped table, loaded once: the prices of every figure for which no other table is named.
DEFAULT_TABLE = load_energy_table(SHIPPED_TABLE)
