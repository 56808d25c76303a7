"""The README's first command, timed: `etl demo` (default size, Prefect flows included) in a fresh process
and a fresh folder outside the repository, as a newcomer runs it after installing.

The demo's own temporary Prefect server starts inside the measured time; the folder it writes (source
extracts, warehouse, reports) is measured and removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.config import CACHE_DIR, REPO_ROOT
from benchmarks.harness import GiB, log

# `etl demo --dir D` in this process, then its own peak resident size (VmHWM) written to a file; exits with the demo's code
_DEMO = """
import sys
from pathlib import Path
from benchmarks.worker import vmhwm_bytes
from etl.cli import main
folder, out = sys.argv[1], sys.argv[2]
sys.argv = ["etl", "demo", "--dir", folder]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    Path(out).write_text(str(vmhwm_bytes() or 0))
sys.exit(code)
"""


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure_demo(args) -> dict:
    """Time `python -m etl demo --dir D` from a cold process; the result has the wall time, the exit code,
    the children's peak RSS and the size of what the demo wrote."""
    work = CACHE_DIR / "runs" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ETL_"))}  # the defaults a newcomer has
    env["PREFECT_HOME"] = str(work / "prefect-home")  # a fresh Prefect home, as on a new machine
    env["PYTHONPATH"] = str(REPO_ROOT)  # the wrapper reads its peak with benchmarks.worker
    log("\n== demo: `etl demo` (default size) from a cold process, Prefect flows included")
    measured_at = dt.datetime.now().isoformat(timespec="seconds")
    load = os.getloadavg()
    out, err = work / "stdout.txt", work / "stderr.txt"
    started = time.perf_counter()
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen([sys.executable, "-c", _DEMO, str(work / "demo"), str(work / "vmhwm")], cwd=work, env=env, stdout=o, stderr=e, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    returncode = os.waitstatus_to_exitcode(status)
    proc.returncode = returncode
    try:  # the demo process's own peak (VmHWM); wait4's ru_maxrss starts at this process's size at the fork
        peak = int((work / "vmhwm").read_text())
    except (OSError, ValueError):
        peak = usage.ru_maxrss * 1024
    stdout, stderr = out.read_text(), err.read_text()
    written = _folder_bytes(work / "demo") if (work / "demo").exists() else 0
    first = next((line for line in stdout.splitlines() if line.startswith("synthetic extracts")), "")
    log(f"  exit {returncode}, {seconds:.1f} s, peak RSS {peak / GiB:.2f} GiB, wrote {written / 1e6:.0f} MB")
    if returncode != 0:
        log("  " + (stderr.strip().splitlines() or ["(no message)"])[-1])
    if not getattr(args, "keep", False):
        shutil.rmtree(work, ignore_errors=True)
    return {
        "size": "demo",
        "measured": returncode == 0,
        "measured_at": measured_at,
        "command": "etl demo --dir <fresh folder> (default size; PREFECT_* and ETL_* unset, a fresh PREFECT_HOME)",
        "exit_code": returncode,
        "seconds": round(seconds, 2),
        "peak_rss_bytes": peak,
        "written_bytes": written,
        "generated": first,
        "load_average": [round(x, 2) for x in load],
    }
