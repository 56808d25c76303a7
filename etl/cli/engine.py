"""Which engine runs `etl run` and `etl backfill`: a Prefect flow run, or a plain call of the same pipeline.

One reason to change: how the default engine is chosen.

``--engine`` wins; then ``ETL_ENGINE``; then ``prefect`` when a Prefect server is configured
(``PREFECT_API_URL`` in the environment or in the active Prefect profile), since the run then shows in
that server's UI; otherwise ``local``: a one-off command does not start Prefect's temporary server (about
30 seconds on two cores) for a run nobody can watch. `etl demo` shows the Prefect flows and keeps
``prefect`` as its default.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ENGINES = ("prefect", "local")


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active profile in PREFECT_HOME/profiles.toml (Prefect's own file), if any."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    profile = data.get("profiles", {}).get(active, {})
    url = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    return url if isinstance(url, str) and url.strip() else None


def prefect_server_configured() -> bool:
    """Whether Prefect would talk to a running server rather than start a temporary one."""
    return bool(os.environ.get("PREFECT_API_URL", "").strip()) or _profile_api_url() is not None


def default_engine(*, demo: bool = False) -> str:
    """The engine when ``--engine`` is not given (see the module docstring)."""
    chosen = os.environ.get("ETL_ENGINE", "").strip()
    if chosen:
        return chosen
    if demo or prefect_server_configured():
        return "prefect"
    return "local"


ENGINE_HELP = (
    "prefect (a Prefect flow run) or local (the same pipeline, a plain call); default: ETL_ENGINE, else prefect when "
    "PREFECT_API_URL is set (in the environment or the Prefect profile), else local"
)

__all__ = ["ENGINES", "ENGINE_HELP", "default_engine", "prefect_server_configured"]
