"""Which engine `etl run` / `etl backfill` use when --engine is not given (etl.cli.engine)."""

from __future__ import annotations

import pytest

import etl.flows.monthly as flows
from etl.cli import engine
from tests.conftest import crime, write_month
from tests.test_cli import invoke


@pytest.fixture
def no_prefect_server(monkeypatch, tmp_path):
    """No PREFECT_API_URL anywhere: an empty Prefect home, no ETL_ENGINE."""
    for name in ("PREFECT_API_URL", "ETL_ENGINE", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    return tmp_path / "prefect-home"


def test_local_unless_a_prefect_server_is_configured(no_prefect_server, monkeypatch):
    assert engine.default_engine() == "local"
    assert engine.default_engine(demo=True) == "prefect"  # the demo shows the flows
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert engine.default_engine() == "prefect"
    monkeypatch.setenv("ETL_ENGINE", "local")
    assert engine.default_engine() == "local" and engine.default_engine(demo=True) == "local"


def test_the_active_prefect_profile_counts(no_prefect_server, monkeypatch):
    no_prefect_server.mkdir()
    profiles = no_prefect_server / "profiles.toml"
    profiles.write_text('active = "ops"\n\n[profiles.ephemeral]\n\n[profiles.ops]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n', encoding="utf-8")
    assert engine.prefect_server_configured() and engine.default_engine() == "prefect"
    monkeypatch.setenv("PREFECT_PROFILE", "ephemeral")
    assert not engine.prefect_server_configured() and engine.default_engine() == "local"
    profiles.write_text("not [ toml", encoding="utf-8")  # Prefect's own problem to report; we just do not count it
    monkeypatch.delenv("PREFECT_PROFILE")
    assert engine.default_engine() == "local"


def test_run_without_engine_and_without_a_server_does_not_start_prefect(no_prefect_server, monkeypatch, source, warehouse):
    def no_flow(*args, **kwargs):
        raise AssertionError("the Prefect flow was started")

    monkeypatch.setattr(flows, "monthly_load", no_flow)
    write_month(source, "2019-03", [crime("A", "2019-03-01"), crime("B", "2019-03-02")])
    r = invoke("run", "--source", source, "--month", "2019-03", "--warehouse", warehouse)
    assert r.exit_code == 0, r.output
    assert "2 rows in = 2 loaded + 0 quarantined" in r.output
    r = invoke("run", "--source", source, "--month", "2019-03", "--warehouse", warehouse, "--engine", "warp")
    assert r.exit_code == 2 and "--engine must be one of prefect, local" in r.output
