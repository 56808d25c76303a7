"""The deployments on a real Prefect server: `prefect server start` on loopback (SQLite in a temporary
PREFECT_HOME), `etl serve` in its own process, runs triggered through the API as an operator would.

A month loads and publishes its artifacts and library logs; a broken extract ends in a Failed state
naming the month, the file and the rule, and the server's automation POSTs it to the webhook given to
`etl serve --notify-webhook` (a real HTTP server on loopback); two runs triggered at once never
interleave (the second waits in AwaitingConcurrencySlot)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from etl.core.warehouse import Warehouse
from tests.conftest import CRIME_HEADER, crime, write_month, write_population

pytestmark = pytest.mark.slow

STARTUP = 180.0  # seconds a cold server may take on two busy cores


def _clean_environ() -> dict[str, str]:
    """This process's environment without the Prefect, AWS and project settings earlier tests may have left
    (a test harness's settings would reach the server and `etl serve` otherwise)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_", "ETL_"))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(1.0)
    raise AssertionError(f"{what} not ready after {timeout:.0f} s" + (f":\n{log.read_text()[-3000:]}" if log and log.exists() else ""))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **_clean_environ(),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": "",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def healthy():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait("prefect server", healthy, STARTUP, proc, log)
        yield url, home
    finally:
        _stop(proc)


_RECEIVER = """
import http.server, sys
out = open(sys.argv[1], "ab", buffering=0)
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        out.write(self.rfile.read(int(self.headers.get("Content-Length", 0))).replace(b"\\n", b" ") + b"\\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), Hook).serve_forever()
"""


@pytest.fixture(scope="module")
def webhook(tmp_path_factory):
    """A webhook receiver on loopback, in its own process: a function giving the JSON bodies POSTed to it."""
    received, port = tmp_path_factory.mktemp("hook") / "received.jsonl", _free_port()
    received.touch()
    proc = subprocess.Popen([sys.executable, "-c", _RECEIVER, str(received), str(port)], start_new_session=True)

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    _wait("the webhook receiver", listening, 30, proc)

    def bodies() -> list[dict]:
        assert proc.poll() is None, f"the webhook receiver stopped (exit {proc.returncode})"
        return [json.loads(line) for line in received.read_text(encoding="utf-8").splitlines() if line.strip()]

    try:
        yield f"http://127.0.0.1:{port}/hook", bodies
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def served(server, webhook, tmp_path_factory):
    url, home = server
    tmp = tmp_path_factory.mktemp("served")
    source, warehouse = tmp / "landing", tmp / "warehouse"
    write_population(source, {2019: 100_000})
    for m in ("2019-01", "2019-02", "2019-03", "2019-04"):
        write_month(source, m, [crime(f"{m}-a", f"{m}-03", "34B"), crime(f"{m}-b", f"{m}-04", "BAD")])
    broken = source / "2019-05"
    broken.mkdir()
    (broken / "recorded_crime.csv").write_text(",".join(CRIME_HEADER) + "\nA,test-force,2019-05-01,,8N,recorded,N1", encoding="utf-8")  # cut off mid-row
    env = {**_clean_environ(), "PREFECT_API_URL": url, "PREFECT_HOME": str(home), "DO_NOT_TRACK": "1"}
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "etl", "serve", "--source", str(source), "--warehouse", str(warehouse), "--notify-webhook", webhook[0]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # This process talks to the server through a settings context, as Prefect's own test harness does: the
    # client AND its events client must see it. (Setting PREFECT_API_URL in os.environ was not enough once
    # Prefect had been imported under another server - e.g. tests/test_landing_s3.py's harness: the run was
    # created on this server but its Scheduled event, which the client emits, went elsewhere, so the
    # server's ordered event stream waited for it and the failure automation never fired.)
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    settings = temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: str(home)})
    settings.__enter__()
    try:
        from prefect.client.orchestration import get_client

        def deployed():
            with get_client(sync_client=True) as client:
                try:
                    client.read_deployment_by_name("monthly-load/scheduled")
                    client.read_deployment_by_name("backfill/on-demand")
                    return True
                except Exception:
                    return False

        _wait("etl serve", deployed, STARTUP, proc, log)
        yield source, warehouse, log
    finally:
        _stop(proc)
        settings.__exit__(None, None, None)


def _run(month: str, *, wait: bool = True):
    from prefect.deployments import run_deployment

    return run_deployment("monthly-load/scheduled", parameters={"month": month}, timeout=300 if wait else 0)


def _finished(flow_run_id):
    from prefect.client.orchestration import get_client

    def done():
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
            return run if run.state is not None and run.state.is_final() else None

    return _wait(f"flow run {flow_run_id}", done, 300)


def test_a_triggered_month_completes_with_its_artifacts_and_the_librarys_logs(served):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    _, warehouse, _ = served
    run = _run("2019-01")
    assert run.state is not None and run.state.is_completed(), run.state
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))}
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    assert {"monthly-load", "monthly-load-headline-measures"} <= keys
    assert any(rec.name == "etl.loading.stages" and "2019-01 commit: 1 force-month(s) loaded" in rec.message for rec in logs)
    assert Warehouse(warehouse).read("recorded_crime")["month"].unique().to_list() == ["2019-01"]


def test_a_broken_extract_ends_in_a_failed_state_naming_month_file_and_rule_and_the_webhook_is_told(server, served, webhook):
    source, warehouse, _ = served
    before = Warehouse(warehouse).read("audit_runs").height
    run = _run("2019-05")
    assert run.state is not None and run.state.is_failed()
    message = run.state.message or ""
    assert message.startswith(f"2019-05 source {source} failed: 2019-05/recorded_crime.csv") and "truncated" in message, message
    assert Warehouse(warehouse).read("audit_runs").height == before  # nothing written
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    def run_logs() -> list[str]:
        with get_client(sync_client=True) as client:
            return [rec.message for rec in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))]

    # the run's logs (they reach the server in batches): the failure in plain words, no stack trace
    logs = _wait("the failed run's logs", lambda: (lambda got: got if any("Engine execution" in m for m in got) else None)(run_logs()), 60)
    assert any("looks truncated" in m for m in logs) and not any("Traceback" in m for m in logs), logs
    told = _wait(  # the server's automation service lags on a busy machine; its log is shown if the POST never comes
        "the failure webhook", lambda: [m for m in webhook[1]() if m.get("flow_run") == run.name], 180, log=Path(server[1]) / "server.log"
    )
    assert told[0]["state"] == "Failed" and told[0]["deployment"] == "monthly-load/scheduled" and told[0]["message"] == message


def test_two_runs_triggered_at_once_never_interleave(served):
    from prefect.client.orchestration import get_client

    _, warehouse, _ = served
    first, second = _run("2019-02", wait=False), _run("2019-03", wait=False)
    runs = [_finished(first.id), _finished(second.id)]
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    with get_client(sync_client=True) as client:
        histories = [[s.name for s in client.read_flow_run_states(r.id)] for r in runs]
    assert any("AwaitingConcurrencySlot" in h for h in histories), histories  # one waited for the other
    runs_table = Warehouse(warehouse).read("audit_runs")
    assert {"2019-02", "2019-03"} <= set(runs_table.filter(runs_table["kind"] == "load")["month"].to_list())
    spans = sorted((r.start_time, r.end_time) for r in runs)
    assert spans[0][1] <= spans[1][0], spans  # the second started running after the first ended
