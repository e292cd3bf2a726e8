"""apps.sweep on Dask: a 2-worker local cluster, and a scheduler and workers started as separate processes on
localhost with one worker killed mid-point, both give byte for byte the CSV of a serial run (--jobs 1, in
process), each from its own empty cache; a second run is answered from the cache without any cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from apps.sweep import main
from contract.cli import run_main

pytestmark = pytest.mark.synth
POINTS = ["--target", "asic", "--arrays", "2x2,2x3", "--base-bits", "4", "--max-m", "16"]


def sweep(root: Path, *extra: str) -> bytes:
    argv = [*POINTS, *extra, "--cache", str(root / "cache"), "-o", str(root / "out")]
    assert run_main(main, argv) == 0
    return (root / "out" / "sweep.csv").read_bytes()


@pytest.fixture(scope="session")
def serial_csv(tmp_path_factory, worker_id) -> bytes:
    """The serial run's CSV, computed once per session even when pytest-xdist spreads the tests over workers."""
    if worker_id == "master":
        return sweep(tmp_path_factory.mktemp("serial"))
    shared = tmp_path_factory.getbasetemp().parent  # the same for every xdist worker of this session
    with FileLock(shared / "sweep-serial.lock"):
        done = shared / "sweep-serial.csv"
        if not done.is_file():
            done.write_bytes(sweep(tmp_path_factory.mktemp("serial")))
        return done.read_bytes()


def test_local_cluster_gives_the_serial_csv_and_a_rerun_hits_the_cache(serial_csv, tmp_path, capsys):
    assert sweep(tmp_path, "--jobs", "2") == serial_csv
    assert capsys.readouterr().out.count("done (cache)") == 0
    assert sweep(tmp_path, "--jobs", "2") == serial_csv
    printed = capsys.readouterr().out
    assert printed.count("done (cache)") == 2 and "2/2 done, 0 running, 0 failed" in printed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def dask_processes(workers: int, logs: Path):
    """`dask scheduler` and `dask worker`s on localhost, each in its own process group (a worker's tool
    subprocesses die with it), all stopped however the test ends; yields the scheduler's address."""
    address = f"tcp://127.0.0.1:{free_port()}"
    dask = [sys.executable, "-m", "dask"]
    commands = [[*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"]]
    commands += [[*dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]] * workers
    processes = []
    try:
        for index, command in enumerate(commands):
            with (logs / f"dask-{index}.log").open("w") as log:
                processes.append(
                    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                )
        yield address
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def kill_a_worker_mid_point(address: str, killed: list[str]) -> None:
    """Once a worker has been computing a point for 2 s (its Verilog generated, Yosys running) and still is,
    SIGKILL that worker's process group: the point is then unfinished and must be run again elsewhere."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
        pids = client.run(os.getpid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = sweep_points_on_workers(client)
            if busy:
                time.sleep(2)
                still = sweep_points_on_workers(client)
                worker = next((w for w, keys in still.items() if keys & busy.get(w, set())), None)
                if worker is not None:
                    os.killpg(pids[worker], signal.SIGKILL)
                    killed.append(worker)
                    return
            time.sleep(0.1)


def sweep_points_on_workers(client) -> dict[str, set]:
    """Worker address -> the sweep points it is computing now."""
    processing = client.processing()
    return {worker: {k for k in keys if "sweep-" in str(k)} for worker, keys in processing.items() if keys}


def test_separate_process_cluster_with_a_worker_killed_mid_point_gives_the_serial_csv(serial_csv, tmp_path, capsys):
    killed: list[str] = []
    with dask_processes(2, tmp_path) as address:
        killer = threading.Thread(target=kill_a_worker_mid_point, args=(address, killed), daemon=True)
        killer.start()
        csv = sweep(tmp_path, "--scheduler", address, "--scheduler-timeout", "60")
        killer.join(timeout=30)
    assert killed, "no worker was killed: the test did not exercise a retry"
    assert csv == serial_csv  # the killed worker's point was computed again: no row lost, none doubled
    assert "2/2 done, 0 running, 0 failed" in capsys.readouterr().out
