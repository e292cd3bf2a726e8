"""contract.progress: a bar redrawn in place on a terminal, a few whole lines on a pipe, whatever the length."""

import io
import sys

from contract.progress import Progress, tracked


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_a_bounded_number_of_whole_lines(capsys, monkeypatch):
    """10,000 steps, even with no time limit between lines: one line per tenth at most, no carriage return."""
    monkeypatch.setattr(Progress, "PIPE_SECONDS", 0.0)
    with Progress("evaluate", 10_000, "images") as progress:
        for done in range(1, 10_001):
            progress(done)
    err = capsys.readouterr().err
    assert "\r" not in err and len(err.splitlines()) == 10
    assert err.splitlines()[-1].startswith("evaluate: 10000/10000 images")


def test_a_slow_pipe_waits_between_lines(capsys):
    """With the default interval, a fast loop writes its final line only."""
    for _ in tracked(range(10_000), "sweep", 10_000, "points"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep: 10000/10000 points, ")


def test_a_terminal_gets_one_line_redrawn_with_rate_and_eta(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(Progress, "TTY_SECONDS", 0.0)
    with Progress("train", 4, "steps") as progress:
        for done in range(5):
            progress(done)
    text = terminal.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1 and text.endswith(" s\x1b[K\n")
    assert text.rsplit("\r", 1)[1].startswith("train: 4/4 steps, ")
    assert "steps/s, ETA" in text


def test_a_transient_bar_is_erased_on_a_terminal_and_silent_at_its_end_on_a_pipe(capsys, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with Progress("epoch 1/2", 3, "steps", transient=True) as progress:
        progress(3)
    assert terminal.getvalue().endswith("\r\x1b[K") and "\n" not in terminal.getvalue()
    monkeypatch.undo()
    with Progress("epoch 1/2", 3, "steps", transient=True) as progress:
        progress(3)
    assert capsys.readouterr().err == ""
