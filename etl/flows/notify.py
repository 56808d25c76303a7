"""An optional notification when a deployed run fails: a Prefect automation that calls a webhook.

One reason to change: how a failure reaches people. `etl serve --notify-webhook URL` saves a Prefect
``Webhook`` block (``etl-failure-webhook``) and one automation (``etl: a deployed run failed``) on the
server: when a flow run of the served deployments enters Failed or Crashed, the server's own automation
service POSTs a JSON payload (deployment, flow run, state, the state's message - which names the month,
force, file and rule - and a link to the run) to the URL. Serving again replaces both, so the URL and the
deployments they watch stay current. The message carries no data values (the project's errors never do).
"""

from __future__ import annotations

import logging
from typing import cast
from uuid import UUID

log = logging.getLogger(__name__)

BLOCK_NAME = "etl-failure-webhook"
AUTOMATION_NAME = "etl: a deployed run failed"
FAILED_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
PAYLOAD = (
    '{"text": "police-etl: {{ deployment.name }} run {{ flow_run.name }} {{ flow_run.state.name }}", '
    '"deployment": "{{ flow.name }}/{{ deployment.name }}", "flow_run": "{{ flow_run.name }}", '
    '"state": "{{ flow_run.state.name }}", "message": {{ flow_run.state.message | tojson }}, '
    '"url": "{{ flow_run|ui_url }}"}'
)


def ensure_failure_webhook(url: str, deployment_ids: list[UUID]) -> UUID:
    """Save the webhook block and (re)create the automation watching ``deployment_ids``; returns the automation's id."""
    from prefect.automations import Automation
    from prefect.blocks.webhook import Webhook
    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.types import SecretDict
    from pydantic import SecretStr

    # Prefect's blocks and automations dispatch to sync or async by the caller; typed as either, so cast
    block = Webhook(url=SecretStr(url), method="POST", headers=SecretDict({"Content-Type": "application/json"}), allow_private_urls=True)
    block_id = cast(UUID, block.save(BLOCK_NAME, overwrite=True))
    try:
        cast(Automation, Automation.read(name=AUTOMATION_NAME)).delete()
    except ValueError:  # none yet
        pass
    automation = Automation(
        name=AUTOMATION_NAME,
        description="Calls the etl-failure-webhook block when a run of the served police-etl deployments fails or crashes.",
        trigger=EventTrigger(
            expect=FAILED_EVENTS,
            match_related={"prefect.resource.id": [f"prefect.deployment.{d}" for d in deployment_ids]},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=PAYLOAD)],
    )
    created = cast(Automation, automation.create())
    log.info("failure notification: automation %s calls block %s for %d deployment(s)", created.id, BLOCK_NAME, len(deployment_ids))
    return cast(UUID, created.id)


__all__ = ["AUTOMATION_NAME", "BLOCK_NAME", "ensure_failure_webhook"]
