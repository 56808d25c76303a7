"""The temporary Prefect API server never outlives the `etl` command that started it (issue 9).

Without PREFECT_API_URL, Prefect starts a uvicorn server as a child process of `etl run`. These tests
run `python -m etl run --engine prefect` as a subprocess, wait until that child exists, end the `etl`
process (SIGKILL, SIGTERM, or a normal failing exit) and check that the server is gone soon after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import crime, write_month, write_population

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the server through /proc (Linux)"),
]

REPO = Path(__file__).resolve().parents[1]
GONE_WITHIN = 15.0  # seconds


def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            found += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie has ended; only its parent's wait is missing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _start(tmp_path: Path, breaks=None) -> subprocess.Popen:
    """`etl run --engine prefect` of 2019-03 of a small source (BREAKS changes it and names the month)."""
    source = tmp_path / "source"
    write_population(source, {2019: 500_000})
    write_month(source, "2019-03", [crime(f"A{i}", f"2019-03-{i % 28 + 1:02d}") for i in range(20)])
    month = breaks(tmp_path) if breaks else "2019-03"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # its own SQLite database
    env["PYTHONPATH"] = str(REPO)
    args = [sys.executable, "-m", "etl", "run", "--source", str(source), "--month", month, "--warehouse", str(tmp_path / "warehouse"), "--engine", "prefect"]
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_server(etl: subprocess.Popen, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _children(etl.pid):
            if "uvicorn" in _cmdline(child) and "prefect" in _cmdline(child):
                return child
        if etl.poll() is not None:
            out, err = etl.communicate()
            pytest.fail(f"etl ended (exit {etl.returncode}) before a Prefect server was seen:\n{out.decode()}\n{err.decode()}")
        time.sleep(0.05)
    etl.kill()
    pytest.fail("no Prefect server child appeared")


def _assert_gone(server: int) -> None:
    deadline = time.monotonic() + GONE_WITHIN
    try:
        while _running(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(server), f"the Prefect server (pid {server}) outlived etl by {GONE_WITHIN:.0f} s"
    finally:
        if _running(server) and "uvicorn" in _cmdline(server):
            os.kill(server, signal.SIGKILL)  # the test's own leftover


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_server_ends_when_etl_is_killed(tmp_path, sig):
    etl = _start(tmp_path)
    try:
        server = _wait_for_server(etl)
        time.sleep(0.5)
        etl.send_signal(sig)
        etl.wait(timeout=60)
    finally:
        if etl.poll() is None:
            etl.kill()
            etl.wait()
    assert etl.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM)
    if sig == signal.SIGTERM:
        assert b"Traceback" not in etl.stderr.read()  # ended like Ctrl-C: quietly, with exit 143
    _assert_gone(server)


def _no_such_month(tmp_path: Path) -> str:
    return "2019-04"


def _extract_is_a_folder(tmp_path: Path) -> str:
    extract = tmp_path / "source" / "2019-03" / "recorded_crime.csv"
    extract.unlink()
    extract.mkdir()
    return "2019-03"


def _warehouse_without_audit_runs(tmp_path: Path) -> str:
    import shutil

    from typer.testing import CliRunner

    from etl.cli.app import app

    args = ["run", "--source", str(tmp_path / "source"), "--month", "2019-03", "--warehouse", str(tmp_path / "warehouse"), "--engine", "local"]
    assert CliRunner().invoke(app, args).exit_code == 0
    shutil.rmtree(tmp_path / "warehouse" / "audit_runs")
    return "2019-03"


@pytest.mark.parametrize(
    "breaks,code,says",
    [(_no_such_month, 1, "2019-04"), (_extract_is_a_folder, 2, "recorded_crime.csv: is a folder"), (_warehouse_without_audit_runs, 2, "audit_runs")],
    ids=["missing-month-exit-1", "extract-is-a-folder-exit-2", "warehouse-without-audit_runs-exit-2"],
)
def test_a_failing_prefect_run_prints_one_line_and_its_server_ends(tmp_path, breaks, code, says):
    etl = _start(tmp_path, breaks=breaks)
    server = _wait_for_server(etl)
    out, err = etl.communicate(timeout=180)
    text = err.decode()
    assert etl.returncode == code, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], text
    assert "Traceback" not in text + out.decode()
    _assert_gone(server)
