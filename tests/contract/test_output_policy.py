"""contract.cli's output policy, JSON limits and interrupt handling, and Command's type checks (issue 14).

Each test names the defect class it covers: a user's file or directory replaced, moved or deleted; an output
written over an input; staging left behind or both copies lost; modes that ignore the umask; a traceback on
Ctrl-C or on hostile JSON; a float or bool command field silently truncated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from contract.cli import MARKER, InputError, atomic_dir, atomic_file, read_json, run_main
from contract.numerics import NumericsError
from sim.command import Command


def write_output(path, text="new", tool="tool", fmt="fmt", inputs=()):
    with atomic_dir(path, tool, fmt, inputs) as staging:
        (staging / "data").write_text(text)


def snapshot(root):
    """Every file under root with its contents, to show that nothing was touched."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    """The id of a process that has exited, as an interrupted run's would be."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_a_new_output_follows_the_umask_and_leaves_no_staging(tmp_path):
    old = os.umask(0o022)
    try:
        write_output(tmp_path / "out")
        with atomic_file(tmp_path / "file.txt", ours=lambda path: False) as staging:
            staging.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "data").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "file.txt").stat().st_mode & 0o777 == 0o644
    assert json.loads((tmp_path / "out" / MARKER).read_text()) == {"tool": "tool", "format": "fmt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "out"]


def test_an_output_inside_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt is a file"):
        write_output(tmp_path / "notes.txt" / "sub" / "out")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_earlier_output_of_the_same_tool_is_replaced(tmp_path):
    write_output(tmp_path / "out", "old")
    write_output(tmp_path / "out", "new")
    assert (tmp_path / "out" / "data").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda out: out.write_text("user file"), "is not a directory"),
        (lambda out: (out.mkdir(), (out / "models").mkdir(), (out / "models" / "m.pt").write_text("w")), "not written"),
        (lambda out: write_output(out, tool="other"), "written by other"),
        (lambda out: write_output(out, fmt="other"), r"written by tool \(other\)"),
        (lambda out: (out.parent / "target").mkdir() or out.symlink_to(out.parent / "target"), "not a directory"),
    ],
    ids=["file", "foreign-directory", "other-tool", "other-format", "symlink"],
)
def test_anything_else_at_the_output_path_is_refused_and_untouched(tmp_path, setup, message):
    setup(tmp_path / "out")
    before = snapshot(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match=message):
        write_output(tmp_path / "out")
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == names


def test_an_output_that_is_or_contains_an_input_is_refused(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.json").write_text("{}")
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="is or contains the input"):
        write_output(tmp_path / "export", inputs=[tmp_path / "export"])
    with pytest.raises(InputError, match="is or contains the input"):
        write_output(tmp_path, inputs=[tmp_path / "export" / "model.json"])
    with pytest.raises(InputError, match="is or contains the input"):
        model = tmp_path / "export" / "model.json"
        with atomic_file(model, ours=lambda path: True, inputs=[model]):
            pass
    assert snapshot(tmp_path) == before


def test_a_file_output_replaces_only_what_its_tool_recognises(tmp_path):
    (tmp_path / "model.pt").write_text("user notes")
    with pytest.raises(InputError, match="not an earlier output"):
        with atomic_file(tmp_path / "model.pt", ours=lambda path: path.read_text() == "ours"):
            pass
    (tmp_path / "model.pt").write_text("ours")
    with atomic_file(tmp_path / "model.pt", ours=lambda path: path.read_text() == "ours") as staging:
        staging.write_text("ours, again")
    assert (tmp_path / "model.pt").read_text() == "ours, again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_a_failed_or_interrupted_run_keeps_the_earlier_output_and_cleans_up(tmp_path, failure):
    write_output(tmp_path / "out", "old")
    with pytest.raises(failure):
        with atomic_dir(tmp_path / "out", "tool", "fmt") as staging:
            (staging / "data").write_text("half")
            raise failure()
    assert (tmp_path / "out" / "data").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_next_run_puts_back_an_output_left_aside_between_the_two_renames(tmp_path):
    """A run killed after moving the old output aside and before renaming the new one in: neither is at the
    path, both are complete under their staging names; the next run restores the old one first."""
    pid = dead_pid()
    write_output(tmp_path / f".out.nestmac-old-{pid}", "old")
    write_output(tmp_path / f".out.nestmac-new-{pid}", "new, never committed")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out", "tool", "fmt"):
            assert (tmp_path / "out" / "data").read_text() == "old"
            raise RuntimeError  # this run fails too: the restored output stays
    assert (tmp_path / "out" / "data").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_old_output_whose_deletion_is_interrupted_is_never_taken_for_complete(tmp_path, monkeypatch):
    """A Ctrl-C while the replaced output is being deleted (the swap is done) leaves part of it behind; it has
    lost its marker first, so neither the old-or-new rule nor the next run's recovery takes it for an output."""
    write_output(tmp_path / "out", "old")

    def interrupted_rmtree(directory):
        (directory / "data").unlink()  # deleted halfway
        raise KeyboardInterrupt

    monkeypatch.setattr("contract.cli.shutil.rmtree", interrupted_rmtree)
    with pytest.raises(KeyboardInterrupt):
        write_output(tmp_path / "out", "new")
    monkeypatch.undo()
    (left,) = tmp_path.glob(".out.nestmac-old-*")
    assert not (left / MARKER).exists() and (tmp_path / "out" / "data").read_text() == "new"
    write_output(tmp_path / "out", "next")  # the next run deletes what is left and keeps its own output
    assert (tmp_path / "out" / "data").read_text() == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_staging_of_dead_runs_is_cleaned_and_live_ones_are_left(tmp_path):
    write_output(tmp_path / "out", "current")
    pid = dead_pid()
    for name in (f".out.nestmac-old-{pid}", f".out.nestmac-new-{pid}", f".out.nestmac-tmp-{pid}"):
        (tmp_path / name).mkdir()
    live = tmp_path / f".out.nestmac-new-{os.getppid()}"
    live.mkdir()
    write_output(tmp_path / "out", "next")
    assert (tmp_path / "out" / "data").read_text() == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]


def test_ctrl_c_is_one_line_and_exit_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert run_main(interrupted, []) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


@pytest.mark.parametrize(
    "text,message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),
        ('{"a": ' + "9" * 5000 + "}", "more than 40 digits"),
        ('{"a": NaN}', "NaN is not a number"),
        ('{"a": ', "not valid JSON"),
        ('"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["', None),
    ],
    ids=["deep", "huge-integer", "nan", "truncated", "brackets-in-a-string"],
)
def test_json_from_users_has_depth_size_and_number_limits(tmp_path, text, message):
    path = tmp_path / "model.json"
    path.write_text(text)
    if message is None:
        assert read_json(path) == text.strip('"')
    else:
        with pytest.raises(InputError, match=message):
            read_json(path)
    with pytest.raises(InputError, match="larger than"):
        read_json(path, max_bytes=1)


def command(**changes) -> Command:
    fields = dict(
        X=np.array([[1, 2]]),
        W=np.array([[3], [4]]),
        wbits=4,
        abits=4,
        scheme="twos",
        mode="raw",
        bias=np.array([1]),
        mult=np.array([1]),
        shift=np.array([0]),
    )
    return Command(**(fields | changes))


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(bias=np.array([0.7])), "bias must be a 1-D numpy array of integers, got 1-D float64"),
        (dict(mult=np.array([1.0])), "mult must be"),
        (dict(shift=np.array([True])), "shift must be .* got 1-D bool"),
        (dict(shift=[0]), "shift must be .* got list"),
        (dict(X=np.array([1, 2])), "X must be a 2-D .* got 1-D int64"),
        (dict(W=np.zeros((2, 1, 1), int)), "W must be a 2-D"),
        (dict(wbits=4.0), "wbits must be an integer"),
        (dict(abits=True), "abits must be an integer"),
        (dict(wbits=0), "wbits must be an integer in 1..16"),
        (dict(scheme=1), "scheme must be a string"),
    ],
)
def test_command_refuses_wrong_types_before_computing_anything(changes, message):
    with pytest.raises(NumericsError, match=message):
        command(**changes)
    command()  # the unchanged fields are a valid command


def test_a_default_output_of_a_different_run_is_refused_and_kept(tmp_path):
    """A tool's default path records what ran there; another run's settings must not silently replace it."""
    out = tmp_path / "out"
    with atomic_dir(out, "tool", "fmt", run={"engine": "16x16", "images": (1, 2)}) as staging:
        (staging / "data").write_text("first")
    marker = json.loads((out / MARKER).read_text())
    assert marker == {"tool": "tool", "format": "fmt", "run": {"engine": "16x16", "images": [1, 2]}}
    with atomic_dir(out, "tool", "fmt", run={"engine": "16x16", "images": [1, 2]}) as staging:  # the same run
        (staging / "data").write_text("again")
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match=r"holds the results of a different tool run \(other engine\); pass -o"):
        with atomic_dir(out, "tool", "fmt", run={"engine": "16x16-d1", "images": [1, 2]}):
            pytest.fail("the block must not run")
    assert snapshot(tmp_path) == before and (out / "data").read_text() == "again"
    write_output(out, "explicit")  # an explicit path (no run recorded) replaces the tool's output as before
    assert (out / "data").read_text() == "explicit"
    with atomic_dir(out, "tool", "fmt", run={"engine": "8x8"}) as staging:  # nothing recorded to differ from
        (staging / "data").write_text("default")


def test_a_long_marker_still_reads_as_ours(tmp_path):
    """A run description of a few kilobytes (many policies) must not turn the output into a stranger's."""
    out = tmp_path / "out"
    run = {"policies": [f"static:{','.join(['8'] * 40)}"] * 30}
    assert len(json.dumps(run)) > 1000
    for text in ("first", "second"):
        with atomic_dir(out, "tool", "fmt", run=run) as staging:
            (staging / "data").write_text(text)
    assert (out / "data").read_text() == "second"
