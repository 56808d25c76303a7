"""The pages as HTML: changes when how a view model becomes a page (template, shared context) does.

Each page is a Jinja2 template of ``templates/`` (``scorecard.html``, ``national.html``,
``index.html``, ``quality.html``, extending ``_page.html``; the charts are ``trend.svg``) rendered
from its view model; the style sheet ``static/report.css`` is inlined in every page, so a page stands
alone. No HTML is built in Python: values are escaped by the templates' autoescaping (`templating`).
The navigation (`Nav`) links the data-quality page and the Data Docs when the report has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etl.measures.spc import RECALCULATION_RULE, SEASONALITY_NOTE
from etl.reporting.formatting import ROUNDING_DETAIL, ROUNDING_STATEMENT
from etl.reporting.national import NationalPage
from etl.reporting.overview import IndexPage
from etl.reporting.quality import QualityPage
from etl.reporting.scorecard import ScorecardPage
from etl.reporting.templating import render, stylesheet


@dataclass(frozen=True)
class Nav:
    """What the navigation of every page links beside the scorecard, national page and CSVs."""

    quality: bool = False  # the report has quality.html
    data_docs: str | None = None  # the Data Docs index relative to the report folder (None: not built)


def _page(template: str, page: Any, nav: Nav | None) -> str:
    return render(template, page=page, nav=nav, css=stylesheet(), rounding_statement=ROUNDING_STATEMENT, rounding_detail=ROUNDING_DETAIL)


def scorecard_html(page: ScorecardPage, nav: Nav | None = None) -> str:
    return _page("scorecard.html", page, nav)


def national_html(page: NationalPage, nav: Nav | None = None) -> str:
    return render(
        "national.html",
        page=page,
        nav=nav,
        css=stylesheet(),
        rounding_statement=ROUNDING_STATEMENT,
        rounding_detail=ROUNDING_DETAIL,
        spc_rule=RECALCULATION_RULE,
        seasonality_note=SEASONALITY_NOTE,
    )


def index_html(page: IndexPage, nav: Nav | None = None) -> str:
    return _page("index.html", page, nav)


def quality_html(page: QualityPage, nav: Nav | None = None) -> str:
    return _page("quality.html", page, nav)


__all__ = ["Nav", "index_html", "national_html", "quality_html", "scorecard_html"]
