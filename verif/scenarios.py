"""Named verification scenarios: the commands and the stall pattern of one run, shared by both simulators.

`build(name, cfg, seed)` is deterministic, so the Amaranth tests and the cocotb testbench (which runs in the
simulator's own process) rebuild the same scenario from its name, configuration and seed instead of
shipping it across. Each scenario says which coverage bins it exists to hit (`targets`, see
`verif.coverage`), and the run fails if it does not hit them.

The seed of a run is derived from `NESTMAC_SEED` (default `DEFAULT_SEED`), the configuration id and the
scenario name, so one environment variable replays or varies the whole regression.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from contract.config import EngineConfig
from contract.numerics import MODES, SCHEMES
from contract.streams import INPUTS, STREAMS
from contract.timing import REQUANT_CYCLES
from sim.command import Command
from verif import coverage
from verif.stalls import Bursts, Never, Pauses, Random

SEED_ENV = "NESTMAC_SEED"
DEFAULT_SEED = 1
STALL_RATES = (0.0, 0.3, 0.6, 0.9)
#: How often a random command asks for each output mode: mostly relu, whose clamps need covering.
MODE_ODDS = [0.75 if mode == "relu" else 0.25 / (len(MODES) - 1) for mode in MODES]


def base_seed() -> int:
    """`NESTMAC_SEED` if set (an integer), else DEFAULT_SEED."""
    text = os.environ.get(SEED_ENV, "").strip()
    return int(text) if text else DEFAULT_SEED


def run_seed(base: int, config_id: str, name: str, round_: int = 0) -> int:
    """The seed of one scenario run: a different stream of numbers per configuration, scenario and round."""
    return zlib.crc32(f"{base}/{config_id}/{name}/{round_}".encode())


@dataclass
class Scenario:
    """Commands to run back to back, the pause generator of each stream, and what the run must cover.

    `abort`, if set, is a command started and then cut off by a reset (`abort_after` cycles in) before
    `commands` run; only a bench that can reset the engine runs such a scenario. `refused` are raw `cmd`
    beats of illegal commands, offered before `commands`: the engine must drop each and raise `error`."""

    name: str
    seed: int
    commands: list[Command]
    pauses: dict[str, Pauses] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    abort: Command | None = None
    abort_after: int = 0
    refused: list[dict] = field(default_factory=list)

    def pause(self, stream: str) -> Pauses:
        return self.pauses.get(stream) or Never()

    @property
    def ideal(self) -> bool:
        """No stream ever pauses: the measured cycles must then equal the model's exactly."""
        return all(p.ideal for p in self.pauses.values())

    @property
    def ideal_inputs(self) -> bool:
        return all(self.pause(name).ideal for name in INPUTS)


def random_command(
    cfg: EngineConfig,
    rng: np.random.Generator,
    m: int,
    k_dim: int,
    n: int,
    wbits=None,
    abits=None,
    scheme=None,
    mode=None,
) -> Command:
    """Random codes; half the columns get requantization parameters that land inside the relu range, the
    others anything the contract allows (so the clamps, the rounding and the ACC wrap all get hit)."""
    acc = cfg.acc_bits
    wbits = wbits or int(rng.integers(1, cfg.base_bits + 1))
    abits = abits or int(rng.integers(1, cfg.act_bits + 1))
    sensible = rng.random(n) < 0.5
    scale = k_dim.bit_length() + wbits + abits  # rough bit length of |acc|
    shift = np.where(
        sensible,
        rng.integers(max(0, scale + 8 - cfg.act_bits), scale + 12, n),
        rng.integers(0, acc + cfg.mult_bits - 1, n),
    )
    return Command(
        X=rng.integers(0, 1 << cfg.act_bits, (m, k_dim)),
        W=rng.integers(0, 1 << cfg.base_bits, (k_dim, n)),
        wbits=wbits,
        abits=abits,
        scheme=scheme or str(rng.choice(list(SCHEMES))),
        mode=mode or str(rng.choice(list(MODES), p=MODE_ODDS)),
        bias=np.where(
            sensible, rng.integers(-(1 << scale), 1 << scale, n), rng.integers(-(1 << (acc - 1)), 1 << (acc - 1), n)
        ),
        mult=np.where(sensible, rng.integers(1, 1 << 10, n), rng.integers(-(1 << 15), 1 << 15, n)),
        shift=shift,
    )


def random_shape(cfg: EngineConfig, rng: np.random.Generator, m: int, k_tiles: int, n_tiles: int) -> tuple:
    """M in 1..m, K in 1..k_tiles*R, N in 1..n_tiles*C (within the configuration's limits)."""
    return (
        int(rng.integers(1, min(m, cfg.max_m) + 1)),
        int(rng.integers(1, min(k_tiles * cfg.rows, cfg.max_k) + 1)),
        int(rng.integers(1, min(n_tiles * cfg.cols, cfg.max_n) + 1)),
    )


def shape_targets(cfg: EngineConfig) -> list[str]:
    """The shape bins that exist for `cfg` (K cannot miss a multiple of R = 1)."""
    return [
        coverage.M_ONE,
        *([coverage.K_PARTIAL] if cfg.rows > 1 else []),
        *([coverage.N_PARTIAL] if cfg.cols > 1 else []),
    ]


_BUILDERS: dict[str, Callable[[EngineConfig, np.random.Generator], Scenario]] = {}


def _scenario(builder):
    _BUILDERS[builder.__name__] = builder
    return builder


@_scenario
def shapes(cfg, rng):
    """Corner shapes back to back on ideal streams: M = 1, M < R (each tile waits for its weights), K and N
    one past a tile, one row of many K-tiles in raw mode (the accumulator reads back the sum it is writing),
    then random shapes and precisions. Bit-exact and cycle-exact."""
    R, C = cfg.rows, cfg.cols
    fixed = [
        (1, 1, 1),
        (1, 2 * R + 1, C + 2),
        (max(R - 1, 1), R + 1, 2 * C - 1),
        (R + 3, 2 * R, C),
        (R + 3, 2 * R - 1 or 1, 2 * C + 1),
        (2 * R + 1, 3 * R - 1, 2 * C + 1),
        (5, R, 1),
    ]
    commands = [random_command(cfg, rng, min(m, cfg.max_m), k, n) for m, k, n in fixed]
    commands += [
        random_command(cfg, rng, 1, 2 * R + 3, C + 1, cfg.base_bits, cfg.act_bits, scheme, "raw")
        for scheme in ("offset", "twos")
    ]
    commands += [random_command(cfg, rng, *random_shape(cfg, rng, 2 * R + 4, 3, 2)) for _ in range(3)]
    return Scenario("shapes", 0, commands, targets=shape_targets(cfg))


def _precision_commands(cfg: EngineConfig, rng, settings) -> list[Command]:
    """One command per (k, j, scheme, mode): mostly 1x1x1 GEMMs, which are cheap, every fourth one a tile and
    one more in K and N, so that a switch also meets a weight reload."""
    R, C = cfg.rows, cfg.cols
    return [
        random_command(cfg, rng, *((2, R + 1, C + 1) if index % 4 == 0 else (1, 1, 1)), k, j, scheme, mode)
        for index, (k, j, scheme, mode) in enumerate(settings)
    ]


@_scenario
def precision_sweep(cfg, rng):
    """Every (k, j, scheme, mode) once, back to back: every command switches precision, which must cost no
    cycle (the model charges none) and need no weight reload."""
    commands = _precision_commands(cfg, rng, coverage.precisions(cfg))
    return Scenario("precision_sweep", 0, commands, targets=coverage.precision_bins(cfg))


@_scenario
def precision_walk(cfg, rng):
    """Every k with j walking the other way, then every k downwards with every j, in both schemes, the modes
    alternating: each k and each j in both schemes, in an eighth of the sweep's commands (for engines whose
    simulation is too slow for the whole sweep)."""
    B, A = cfg.base_bits, cfg.act_bits
    pairs = [(k, (k * 5) % A + 1) for k in range(1, B + 1)]
    pairs += [(B + 1 - k, j) for k, j in zip(range(1, B + 1), range(1, A + 1), strict=False)]
    pairs += [(B, j) for j in range(min(A, B) + 1, A + 1)]  # the j beyond B when A > B
    settings = [(k, j, scheme, MODES[i % len(MODES)]) for scheme in SCHEMES for i, (k, j) in enumerate(pairs)]
    commands = _precision_commands(cfg, rng, settings)
    return Scenario("precision_walk", 0, commands, targets=[coverage.precision_bin(*s) for s in settings])


#: Per output column, cycled: bias, mult and shift at and around their limits.
def _extreme_parameters(cfg: EngineConfig, n: int) -> dict[str, np.ndarray]:
    top = (1 << (cfg.acc_bits - 1)) - 1
    shift_max = cfg.acc_bits + cfg.mult_bits - 2
    return {
        "bias": np.resize([top, -top - 1, 0, 1, -1, 5], n),
        "mult": np.resize([(1 << 15) - 1, -(1 << 15), 1, -1, 0, 3], n),
        "shift": np.resize([shift_max, 0, 1, 2, 0, cfg.acc_bits], n),
    }


@_scenario
def extremes(cfg, rng):
    """All-zero codes, all-max codes at full precision in every scheme and mode and at a random precision, with
    bias, mult and shift at their limits: the relu clamps at 0 and at the top code, and the ACC wrap."""
    R, C = cfg.rows, cfg.cols
    commands = []
    for fill, full, scheme, mode in [
        (0, True, "offset", "relu"),
        (0, True, "twos", "raw"),
        *((1, True, scheme, mode) for scheme in SCHEMES for mode in MODES),
        (1, False, "offset", "raw"),
        (1, False, "twos", "relu"),
    ]:
        wbits, abits = (cfg.base_bits, cfg.act_bits) if full else (None, None)
        base = random_command(cfg, rng, min(2, cfg.max_m), 2 * R + 1, C + 1, wbits, abits, scheme, mode)
        commands.append(
            Command(
                X=np.full_like(base.X, fill * ((1 << cfg.act_bits) - 1)),
                W=np.full_like(base.W, fill * ((1 << cfg.base_bits) - 1)),
                wbits=base.wbits,
                abits=base.abits,
                scheme=scheme,
                mode=mode,
                **_extreme_parameters(cfg, base.n),
            )
        )
    return Scenario("extremes", 0, commands, targets=[coverage.CLAMP_LOW, coverage.CLAMP_HIGH, coverage.ACC_WRAP])


@_scenario
def stalls(cfg, rng):
    """Random pauses on every stream, each at its own rate (0 to 90%), so each stream is at some point the one
    holding the pipeline back: nothing lost, duplicated or reordered, no extra beat after the last."""
    pauses = {name: Random(float(rng.choice(STALL_RATES)), int(rng.integers(1 << 31))) for name in STREAMS}
    commands = [random_command(cfg, rng, 1, 2 * cfg.rows + 1, cfg.cols + 2)]
    commands += [random_command(cfg, rng, *random_shape(cfg, rng, 2 * cfg.rows + 2, 3, 2)) for _ in range(3)]
    return Scenario("stalls", 0, commands, pauses)


@_scenario
def backpressure(cfg, rng):
    """`result.ready` held low, on ideal inputs, for longer than a whole command takes: the 2-entry output
    FIFO fills, the pipeline must stop, and resume without losing or repeating a row."""
    R, C = cfg.rows, cfg.cols
    commands = [random_command(cfg, rng, min(R + 2, cfg.max_m), R + 1, C + 1) for _ in range(2)]
    # Ready until the first result beat is about to appear (M >= 1 rows: 2R + C + 2 + REQUANT_CYCLES cycles
    # from acceptance, a few more on a pipelined engine: contract.timing),
    # then low for twice the fill time: the hold may begin a little before that beat is offered.
    hold = 2 * coverage.fifo_fill_cycles(cfg, commands)
    return Scenario(
        "backpressure",
        0,
        commands,
        {"result": Bursts(run=2 * R + C + 2 + REQUANT_CYCLES, hold=hold)},
        [coverage.FIFO_FULL],
    )


@_scenario
def long_gemm(cfg, rng):
    """A GEMM of many tiles with M >= R: after the first weight load the array takes an activation row in
    every slot, tile after tile (the model charges no weight wait), cycle-exact."""
    m = min(16, cfg.max_m)
    return Scenario("long_gemm", 0, [random_command(cfg, rng, m, 9 * cfg.rows + 1, 5 * cfg.cols + 3)])


@_scenario
def reset(cfg, rng):
    """Reset asserted in the middle of a command; then clean commands must run exactly as modelled."""
    R, C = cfg.rows, cfg.cols
    abort = random_command(cfg, rng, min(R + 3, cfg.max_m), 2 * R - 1 or 1, 2 * C + 1)
    commands = [random_command(cfg, rng, 1, 1, 1), random_command(cfg, rng, 1, 2 * R + 1, C + 2)]
    return Scenario("reset", 0, commands, abort=abort, abort_after=max(2, abort.m * R // 2 + 3))


@_scenario
def illegal(cfg, rng):
    """Illegal commands (docs/architecture.md, "Illegal commands"), each dropped with `error` raised; the
    legal commands after them must run exactly as modelled."""
    legal = {"m": 1, "k_dim": 1, "n": 1, "wbits": cfg.base_bits, "abits": cfg.act_bits, "scheme": 0, "mode": 0}
    beyond = {"m": cfg.max_m, "k_dim": cfg.max_k, "n": cfg.max_n, "wbits": cfg.base_bits, "abits": cfg.act_bits}
    refused = [legal | {name: 0} for name in beyond]
    # One past each maximum, where the command field is wide enough to hold it.
    refused += [legal | {name: top + 1} for name, top in beyond.items() if top + 1 < 1 << cfg.field_bits(top)]
    R, C = cfg.rows, cfg.cols
    commands = [random_command(cfg, rng, 2, R + 1, C + 1), random_command(cfg, rng, 1, 1, 1)]
    return Scenario("illegal", 0, commands, refused=refused)


NAMES = tuple(_BUILDERS)


def build(name: str, cfg: EngineConfig, seed: int) -> Scenario:
    """The scenario `name` for `cfg`, from `seed` (same arguments, same scenario, in any process)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(NAMES)}")
    scenario = _BUILDERS[name](cfg, np.random.default_rng(seed))
    scenario.seed = seed
    return scenario


def plan_bins(cfg: EngineConfig, names: tuple[str, ...]) -> list[str]:
    """The bins a run of the scenarios `names` on `cfg` must hit: all required ones, except that of the
    (k, j, scheme, mode) bins only those the scenarios target (a walk instead of the sweep, or neither)."""
    targeted = {b for name in names for b in build(name, cfg, 0).targets}
    return [b for b in coverage.required_bins(cfg) if not b.startswith(coverage.PRECISION_PREFIX) or b in targeted]
