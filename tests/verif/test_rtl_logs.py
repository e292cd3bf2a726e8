"""The RTL runner keeps the tools' output in log files and, on a failure, names the file and quotes its end.

Fake cocotb runners stand in for Verilator here, so nothing is built or simulated.
"""

import pytest

from eda.tools import ToolError
from verif.configs import RTL
from verif.rtl import runner
from verif.rtl.runner import BUILD_LOG, SIMULATION_LOG, Built, run_cocotb, tool_failure


class FailingRunner:
    """Writes a tool's chatter, then fails as cocotb does: RuntimeError from a build, SystemExit from a run."""

    def _fail(self, log_file, exc):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text("".join(f"line {i}\n" for i in range(30)) + "%Error: the last word\n")
        raise exc

    def build(self, log_file, **_):
        self._fail(log_file, RuntimeError("Command failed with return code: 1"))

    def test(self, log_file, **_):
        self._fail(log_file, SystemExit(1))


def test_a_failure_quotes_the_logs_last_lines_and_names_it(tmp_path):
    log = tmp_path / "tool.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    message = str(tool_failure("the verilator build of top", log))
    assert message.startswith("the verilator build of top failed: line 22 | ")
    assert message.endswith(f"line 29 (full log: {log})") and "line 21" not in message


def test_a_failed_build_is_one_tool_error_naming_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_runner", lambda simulator: FailingRunner())
    with pytest.raises(ToolError) as raised:
        runner._build("verilator", RTL["2x2-b4a4acc16-m8k64n64"], None, tmp_path)
    log = next(tmp_path.glob("sim-*")) / BUILD_LOG
    assert str(raised.value).startswith("the verilator build of nestmac_engine failed: line 23 | ")
    assert str(raised.value).endswith(f"%Error: the last word (full log: {log})")


def test_a_failed_simulation_is_one_tool_error_naming_its_log(tmp_path, monkeypatch):
    built = Built("verilator", tmp_path, FailingRunner(), "top", tmp_path / "sim")
    monkeypatch.setattr(runner, "build", lambda *args: built)
    with pytest.raises(ToolError) as raised:
        run_cocotb("verilator", RTL["2x2-b4a4acc16-m8k64n64"], "tb", ["play"], {}, "a-run")
    log = tmp_path / "runs" / "a-run" / SIMULATION_LOG
    assert str(raised.value).startswith("the verilator run of tb failed: line 23 | ")
    assert str(raised.value).endswith(f"%Error: the last word (full log: {log})")
