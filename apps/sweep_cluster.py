"""Where sweep points run: Dask tasks on a local cluster or on an existing one, or in this process.

The points run on `dask.distributed`, the engine users already run on a laptop, on a lab's machines (`dask
scheduler` / `dask worker`) or on SLURM/PBS (dask-jobqueue), rather than on a home-made pool. A local cluster has
one single-threaded worker process per job, at most one per core: each point is a synthesis tool run that keeps a
core busy, so more workers than cores only slow every point down. When a worker dies mid-point the scheduler runs
the point again on another worker, and every point is gathered by its own future, so no row is lost or doubled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator

from apps.sweep_points import AREA_FIELDS, Outcome, Point, run_point
from contract.cli import InputError, one_line, require_extra

#: Seconds between progress lines while no point finishes, so a long sweep shows it is alive.
HEARTBEAT_S = 30.0


def local_workers(jobs: int) -> int:
    """Workers of a local cluster for --jobs: bounded by the cores (a point keeps one core busy)."""
    return max(1, min(jobs, os.cpu_count() or 1))


@contextlib.contextmanager
def dask_client(scheduler: str | None, jobs: int, timeout: float) -> Iterator:
    """A client of a new local cluster (scheduler None) or of the scheduler at `scheduler`; InputError when
    that scheduler cannot be reached, or has no worker, within `timeout` seconds."""
    require_extra("distributed", "sweep")
    from distributed import Client, LocalCluster

    if scheduler is None:
        with (
            LocalCluster(
                n_workers=local_workers(jobs),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        reason = one_line(exc)
        raise InputError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({reason})") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise InputError(f"the Dask scheduler at {scheduler} has no worker after {timeout:g} s") from None
        yield client


class Progress:
    """One line per finished point and per heartbeat: done, running, failed and an ETA, plain text so that a
    log file or CI output reads the same as a terminal."""

    def __init__(self, total: int, emit: Callable[[str], None]):
        self.total, self.emit, self.start = total, emit, time.perf_counter()
        self.done = self.failed = self.computed = 0

    def finished(self, outcome: Outcome, running: int) -> None:
        self.done += 1
        self.failed += outcome.failed
        self.computed += not outcome.cached
        how = "cache" if outcome.cached else f"{outcome.seconds:.1f} s"
        result = f"FAILED: {outcome.area['error']}" if outcome.failed else f"done ({how})"
        self.line(running, f"{outcome.point.name} {result}")

    def line(self, running: int, what: str = "") -> None:
        elapsed = time.perf_counter() - self.start
        left = self.total - self.done
        # Cache hits cost nothing: the time so far is what the computed points took.
        eta = "?" if left and not self.computed else f"{elapsed * left / max(self.computed, 1):.0f} s"
        status = f"{self.done}/{self.total} done, {running} running, {self.failed} failed, ETA {eta}"
        self.emit(f"[{elapsed:7.1f} s] {status}" + (f": {what}" if what else ""))


def run_points(points: list[Point], cache, client, progress: Progress) -> list[Outcome]:
    """Every point's outcome, in the order of `points`: on the Dask client, or one after another in this
    process when client is None (the reference a distributed run must reproduce)."""
    if client is None:
        outcomes = []
        for point in points:
            outcomes.append(run_point(point, cache))
            progress.finished(outcomes[-1], running=0)
        return outcomes
    from distributed import wait

    # Keys unique to this sweep: two sweeps on one scheduler must not share (or cancel) each other's tasks.
    run = uuid.uuid4().hex[:8]
    futures = [client.submit(run_point, point, cache, key=f"sweep-{run}-{point.name}", pure=False) for point in points]
    by_key = {future.key: index for index, future in enumerate(futures)}
    outcomes: list[Outcome | None] = [None] * len(points)
    pending = set(futures)
    while pending:
        try:
            finished, pending = wait(pending, timeout=HEARTBEAT_S, return_when="FIRST_COMPLETED")
        except TimeoutError:
            progress.line(running(client, by_key))
            continue
        for future in finished:
            index = by_key[future.key]
            outcomes[index] = outcome_of(future, points[index])
            progress.finished(outcomes[index], running(client, by_key))
    return outcomes


def outcome_of(future, point: Point) -> Outcome:
    """The future's outcome; an exception that escaped the point (a bug, or a worker killed more often than
    the scheduler allows) becomes that point's error so the sweep goes on."""
    if future.status == "finished":
        return future.result()
    exc = future.exception()
    error = f"{type(exc).__name__}: {one_line(exc)}"
    return Outcome(point, dict.fromkeys(AREA_FIELDS, "") | {"error": error}, False, 0.0)


def running(client, keys: dict) -> int:
    """Points being computed on a worker right now: the scheduler may hand a worker more tasks than it has
    threads (the rest wait there), so each worker counts for at most its threads."""
    threads = client.nthreads()
    return sum(
        min(sum(key in keys for key in on_worker), threads.get(worker, 1))
        for worker, on_worker in client.processing().items()
    )
