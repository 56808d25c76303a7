"""The Jinja2 environment of the reports: changes when how templates are found, escaped or filtered does.

Templates live in ``etl/reporting/templates/`` (``PackageLoader``) and the style sheet in
``etl/reporting/static/report.css``; both ship with the package (``[tool.setuptools.package-data]``).
Autoescaping is on for ``.html`` and ``.svg`` templates, so every value a template prints is escaped;
the escaping is the standard library's ``html.escape`` (the `finalize` hook below: an apostrophe
is ``&#x27;``, as the pages have always had it) and ``None`` prints as nothing. Values already marked
safe (a macro's output; the style sheet, marked ``|safe`` in ``_page.html``) are printed as they are.
An undefined name in a template is an error, never an empty string.
"""

from __future__ import annotations

import html
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from etl.reporting.formatting import status_words


class _Escaped(str):
    """Text already escaped: autoescaping takes it as it is (the ``__html__`` protocol)."""

    def __html__(self) -> str:
        return self


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "__html__"):
        return value
    return _Escaped(html.escape(str(value), quote=True))


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The environment (built once)."""
    env = Environment(
        loader=PackageLoader("etl.reporting", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "svg"), default_for_string=True),
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["status_words"] = status_words
    env.filters["f1"] = lambda x: f"{x:.1f}"  # a coordinate in a drawing
    return env


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """``static/report.css``, inlined in every page (each page stands alone: it can be mailed or printed)."""
    return (resources.files("etl.reporting") / "static" / "report.css").read_text(encoding="utf-8")


def render(template: str, **context: Any) -> str:
    """The named template rendered with ``context``."""
    return environment().get_template(template).render(**context)


__all__ = ["environment", "render", "stylesheet"]
