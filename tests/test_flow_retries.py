"""The flows retry transient errors only: a busy warehouse is tried again, a contract failure never."""

import pytest
from prefect.states import Completed, Failed

from etl.core.contracts import ContractError
from etl.core.validation import FileFailure
from etl.core.warehouse import StaleSnapshot, WarehouseBusy
from etl.flows.monthly import RETRIES, is_transient, load_month_task


@pytest.mark.parametrize(
    "exc,retried",
    [
        (WarehouseBusy("wh: another run is writing"), True),
        (StaleSnapshot("wh: changed while computing"), True),
        (FileFailure("2019-01/recorded_crime.csv", "columns_present", "column missing"), False),
        (ContractError("recorded_crime.yaml: bad"), False),
        (ZeroDivisionError("a bug"), False),
    ],
    ids=["busy", "stale", "data", "config", "bug"],
)
def test_only_transient_errors_are_retried(exc, retried):
    assert is_transient(None, None, Failed(data=exc)) is retried


def test_a_completed_state_is_not_retried_and_the_tasks_carry_the_policy():
    assert is_transient(None, None, Completed(data=1)) is False
    assert load_month_task.retries == RETRIES == 2 and load_month_task.retry_condition_fn is is_transient
