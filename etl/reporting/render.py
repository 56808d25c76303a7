"""The pages as HTML: changes when how a view model becomes a page (template, shared context) does.

Each page is a Jinja2 template of ``templates/`` (``scorecard.html``, ``national.html``,
``index.html``, extending ``_page.html``; the charts are ``trend.svg``) rendered from its view
model; the style sheet ``static/report.css`` is inlined in every page, so a page stands alone.
No HTML is built in Python: values are escaped by the templates' autoescaping (`templating`).
"""

from __future__ import annotations

from typing import Any

from etl.measures.spc import RECALCULATION_RULE, SEASONALITY_NOTE
from etl.reporting.formatting import ROUNDING_DETAIL, ROUNDING_STATEMENT
from etl.reporting.national import NationalPage
from etl.reporting.overview import IndexPage
from etl.reporting.scorecard import ScorecardPage
from etl.reporting.templating import render, stylesheet


def _page(template: str, page: Any) -> str:
    return render(template, page=page, css=stylesheet(), rounding_statement=ROUNDING_STATEMENT, rounding_detail=ROUNDING_DETAIL)


def scorecard_html(page: ScorecardPage) -> str:
    return _page("scorecard.html", page)


def national_html(page: NationalPage) -> str:
    return render(
        "national.html",
        page=page,
        css=stylesheet(),
        rounding_statement=ROUNDING_STATEMENT,
        rounding_detail=ROUNDING_DETAIL,
        spc_rule=RECALCULATION_RULE,
        seasonality_note=SEASONALITY_NOTE,
    )


def index_html(page: IndexPage) -> str:
    return _page("index.html", page)


__all__ = ["index_html", "national_html", "scorecard_html"]
