"""Shared fixtures: tiny extracts written row by row, so every test states exactly what it feeds in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"

CRIME_HEADER = [
    "crime_ref",
    "force_id",
    "recorded_date",
    "offence_date",
    "hocr_code",
    "status",
    "npu",
    "lsoa_code",
    "domestic_abuse",
    "hate_crime",
    "knife_sharp",
    "firearm",
    "online",
    "business_victim",
    "victim_age",
]


def crime(
    ref: str,
    date: str,
    code: str = "8N",
    *,
    status: str = "recorded",
    force: str = "test-force",
    knife: str = "N",
    online: str = "N",
    npu: str = "N1",
    age: str = "30",
    offence_date: str = "",
    lsoa: str = "E01000001",
    **flags: str,
) -> dict:
    row = {
        "crime_ref": ref,
        "force_id": force,
        "recorded_date": date,
        "offence_date": offence_date,
        "hocr_code": code,
        "status": status,
        "npu": npu,
        "lsoa_code": lsoa,
        "domestic_abuse": "N",
        "hate_crime": "N",
        "knife_sharp": knife,
        "firearm": "N",
        "online": online,
        "business_victim": "N",
        "victim_age": age,
    }
    row.update(flags)
    return row


def write_csv(path: Path, header: list[str], rows: list[dict], *, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(str(r.get(h, "")) for h in header) for r in rows]
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def write_month(source: Path, month: str, crimes: list[dict], outcomes: list[dict] | None = None) -> Path:
    p = write_csv(source / month / "recorded_crime.csv", CRIME_HEADER, crimes)
    if outcomes is not None:
        write_csv(source / month / "crime_outcomes.csv", ["crime_ref", "outcome_type", "outcome_date"], outcomes)
    return p


def write_population(source: Path, rows: dict[int, int], force: str = "test-force") -> Path:
    return write_csv(
        source / "reference" / "population.csv", ["force_id", "year", "population"], [{"force_id": force, "year": y, "population": p} for y, p in rows.items()]
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return tmp_path / "source"


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse"


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1 (a free port: a real S3 API over HTTP, no mock of the client); the AWS_*
    environment points at it while the module runs. Yields (an s3fs filesystem on it, its endpoint URL)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import s3fs

        yield s3fs.S3FileSystem(skip_instance_cache=True), endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
