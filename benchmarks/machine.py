"""Where the figures came from: CPU, cores, memory, load, Python and library versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def _cpu_model() -> str | None:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total() -> int | None:
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def code_fingerprint() -> dict:
    """sha256 of the project's code and contracts measured (others edit the library while benchmarks run)."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = {}
    # every file of each folder, subpackages included (etl/*.py alone left out the library's packages before 2026-11-30 18:20)
    for folder, pattern in (("etl", "**/*.py"), ("flows", "**/*.py"), ("contracts", "**/*.yaml"), ("expectations", "**/*.json")):
        h = hashlib.sha256()
        for p in sorted((root / folder).glob(pattern)):
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
        out[folder] = h.hexdigest()[:16]
    return out


def info() -> dict:
    versions = {}
    for pkg in ("polars", "pyarrow", "pandas", "numpy", "great-expectations", "pandera", "prefect", "deltalake", "fastapi"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": _mem_total(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "load_average_at_start": load,
        "code_sha256": code_fingerprint(),
    }
