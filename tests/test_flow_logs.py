"""A failed deployed run's logs: a project error is one plain line, never a stack trace (etl.flows.monthly)."""

import logging
import sys

from etl.errors import ConfigError
from etl.flows.monthly import MonthFailed, PlainProjectErrors


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "Engine execution exited with %s", ("unexpected exception",), info)


def test_a_project_error_is_logged_as_its_message_without_a_traceback():
    message = "2019-05 test-force failed: 2019-05/recorded_crime.csv: looks truncated: the last line (2) ends without a newline"
    for exc in (MonthFailed(message, [{"month": "2019-05", "outcome": "failed"}]), ConfigError("no such folder")):
        record = _record(exc)
        assert PlainProjectErrors().filter(record) is True
        text = logging.Formatter().format(record)
        assert text == f"Engine execution exited with unexpected exception: {exc}"
        assert "Traceback" not in text


def test_any_other_exception_keeps_its_traceback():
    record = _record(ValueError("a bug"))
    PlainProjectErrors().filter(record)
    assert "Traceback" in logging.Formatter().format(record)


def test_the_filter_is_on_prefects_run_loggers():
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        assert sum(isinstance(f, PlainProjectErrors) for f in logging.getLogger(name).filters) == 1
