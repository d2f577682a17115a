"""The ``alarm`` check: does an alarm's notification reach the stage's alarm topic?

It sets one of the stage's alarms (those whose actions start with the stack's ``AlarmTopicArn``
output) to ALARM with ``SetAlarmState`` and reads the alarm's history for the action CloudWatch
then ran: "Successfully executed action" passes, "Failed to execute action" fails with what
CloudWatch said (a topic policy without an Allow for ``cloudwatch.amazonaws.com`` fails here:
issue 21, finding 1). The alarm is set back to OK afterwards (no OK actions are configured);
its next evaluation puts it where its metric says. Skipped on the twin, which has no CloudWatch
alarms and no SNS, and without the stack's outputs.
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_SetAlarmState.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarmHistory.html
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.verify.checks import Session
from pipeline.verify.report import CheckFailed, CheckSkipped

POLL_S = 1.0  # DescribeAlarmHistory is a control-plane call: a few per second at most
SUCCEEDED, FAILED = "succeeded", "failed"


def action_outcome(item: Mapping[str, Any]) -> str | None:
    """``succeeded``/``failed`` for an ``Action`` history item (its ``HistoryData`` JSON's
    ``actionState``, else its ``HistorySummary`` wording), None for anything else."""
    if item.get("HistoryItemType") != "Action":
        return None
    try:
        data = json.loads(str(item.get("HistoryData") or "{}"))
    except ValueError:
        data = {}
    state = str(data.get("actionState", "")).lower() if isinstance(data, dict) else ""
    summary = str(item.get("HistorySummary", "")).lower()
    if state == "succeeded" or summary.startswith("successfully executed action"):
        return SUCCEEDED
    if state == "failed" or summary.startswith("failed to execute action"):
        return FAILED
    return None


async def _call(fn: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, **kwargs)


async def check_alarm(s: Session) -> str:
    aws = s.need_aws()
    if aws.endpoint is not None:
        raise CheckSkipped("the twin has no CloudWatch alarms or SNS topics: run verify with "
                           "--stack NAME against a deployed stage")
    if not aws.alarm_topic:
        raise CheckSkipped("no AlarmTopicArn: give --stack NAME (its outputs name the topic)")
    cloudwatch = aws.client("cloudwatch")
    alarms = (await _call(cloudwatch.describe_alarms, ActionPrefix=aws.alarm_topic,
                          AlarmTypes=["MetricAlarm"]))["MetricAlarms"]
    if not alarms:
        raise CheckFailed(f"no alarm of the stage notifies {aws.alarm_topic}")
    name = sorted(str(a["AlarmName"]) for a in alarms)[0]
    reason = f"python -m pipeline verify {s.nonce}: does the alarm action reach its topic?"
    since = datetime.now(UTC) - timedelta(seconds=5)
    # From OK to ALARM is a state change whatever the alarm's state was: the actions run.
    await _call(cloudwatch.set_alarm_state, AlarmName=name, StateValue="OK", StateReason=reason)
    await _call(cloudwatch.set_alarm_state, AlarmName=name, StateValue="ALARM",
                StateReason=reason)
    try:
        while True:
            history = await _call(cloudwatch.describe_alarm_history, AlarmName=name,
                                  HistoryItemType="Action", StartDate=since,
                                  ScanBy="TimestampDescending")
            for item in history.get("AlarmHistoryItems", []):
                outcome = action_outcome(item)
                if outcome == SUCCEEDED:
                    return f"{name} set to ALARM: {item.get('HistorySummary')}"
                if outcome == FAILED:
                    raise CheckFailed(f"{name} set to ALARM: {item.get('HistorySummary')} "
                                      f"({item.get('HistoryData')}); does the topic policy "
                                      "allow cloudwatch.amazonaws.com to publish?")
            if s.remaining() <= POLL_S:
                raise CheckFailed(f"{name} was set to ALARM; no action in its history before "
                                  "the deadline")
            await asyncio.sleep(POLL_S)
    finally:
        await _call(cloudwatch.set_alarm_state, AlarmName=name, StateValue="OK",
                    StateReason=f"{reason} (done)")
