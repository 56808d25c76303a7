"""The report pages opened in a real headless Chromium: they load, render their tables and charts,
log no script errors and produce a readable screenshot.

Needs the Debian package `chromium` (CI: `apt-get install -y chromium`); skipped, saying so, without it.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from etl.core.periods import Month
from etl.reporting.layout import load_scorecard_layout
from etl.reporting.reports import write_report
from tests.test_reports import FORCE, MONTH, measures_frame, spc_frame

pytestmark = pytest.mark.slow

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(tmp))  # keep Chromium's crash/config files out of the real home
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180, env=env)


def no_script_errors(proc: subprocess.CompletedProcess) -> None:
    """No uncaught exception and no console message at all (the pages carry no script, so any is an error).

    Chromium logs page console messages to stderr as `INFO:CONSOLE:<line>] "<message>", source: ...`
    whatever their level, so every console line is rejected, not just those saying "error".
    """
    assert "Uncaught" not in proc.stderr, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    assert console == [], console[:5]


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> tuple[Path, object, list[str]]:
    out = tmp_path_factory.mktemp("report")
    measures = measures_frame()
    national = sorted(m for m in measures.filter(pl.col("force_id") == FORCE)["measure_id"].unique().to_list() if m.startswith(("nm_", "pu_")))
    # a monthly series for every national measure in the table, so each section draws a chart
    series = [spc_frame()]
    for i, mid in enumerate(m for m in national if m != "nm_homicide_count"):
        months = [str(Month.parse("2019-01") + k) for k in range(37)]
        series.append(
            pl.DataFrame(
                {
                    "force_id": FORCE,
                    "measure_id": mid,
                    "month": months,
                    "value": [100.0 + 10 * i + (k % 7) * 3 for k in range(37)],
                    "centre": 110.0 + 10 * i,
                    "lower": 85.0 + 10 * i,
                    "upper": 135.0 + 10 * i,
                    "baseline_start": "2019-01",
                    "baseline_end": "2020-12",
                    "signal": [None] * 37,
                }
            )
        )
    spc = pl.concat(series, how="vertical_relaxed")
    paths = write_report(measures, MONTH, out, spc=spc, force_id=FORCE)
    return out, paths, national


@needs_chromium
def test_scorecard_renders_in_chromium(pages, tmp_path):
    out, paths, _ = pages
    proc = chromium(tmp_path, "--dump-dom", paths.scorecard.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    no_script_errors(proc)
    dom = proc.stdout
    layout = load_scorecard_layout()
    assert dom.count('<table class="scorecard">') == len(layout.objectives)
    for o in layout.objectives:
        assert f">{html.escape(o.title)}</h2>" in dom
    assert html.escape(layout.kpis[0].kpi) in dom
    assert "DA <strong>4.3%</strong>" in dom and "[YTD Jan 22]" in dom and "Same period 2019/20" in dom


@needs_chromium
def test_national_page_renders_one_svg_per_national_measure(pages, tmp_path):
    out, paths, national = pages
    proc = chromium(tmp_path, "--dump-dom", paths.national.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    no_script_errors(proc)
    dom = proc.stdout
    for mid in national:
        start = dom.index(f'id="m-{mid}"')
        end = dom.find('<section class="measure"', start)
        sec = dom[start : end if end > 0 else len(dom)]
        assert sec.count("<svg") == 1, mid
    assert dom.count("<svg") == len(national)
    hom = dom[dom.index('id="m-nm_homicide_count"') :]
    hom = hom[: hom.index("</svg>")]
    assert hom.count('<circle class="pt') == 43


@needs_chromium
def test_screenshots_are_non_trivial(pages, tmp_path):
    out, paths, _ = pages
    for page in (paths.index, paths.scorecard, paths.national):
        png = out / f"{page.stem}.png"
        proc = chromium(tmp_path, f"--screenshot={png}", "--window-size=1400,2000", "--hide-scrollbars", page.as_uri())
        assert proc.returncode == 0, proc.stderr[-2000:]
        no_script_errors(proc)
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 20_000, (page.name, png.stat().st_size)
