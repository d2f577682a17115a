"""The ``alarm`` check against a fake CloudWatch: SetAlarmState, then the action's outcome in the
alarm history decides; skipped on the twin and without the stack's AlarmTopicArn."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline.verify.alarm import FAILED, SUCCEEDED, action_outcome, check_alarm
from pipeline.verify.checks import Session
from pipeline.verify.report import CheckFailed, CheckSkipped
from pipeline.verify.target import AwsAccess, Target

TOPIC = "arn:aws:sns:us-east-1:123456789012:WebSocketPipeline-dev-AlarmTopic"


@dataclass
class FakeCloudWatch:
    """describe_alarms / set_alarm_state / describe_alarm_history, recorded."""

    outcome: str | None  # what the history shows after the ALARM transition
    states: list[tuple[str, str]] = field(default_factory=list)

    def describe_alarms(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["ActionPrefix"] == TOPIC
        return {"MetricAlarms": [{"AlarmName": "b-errors"}, {"AlarmName": "a-iterator-age"}]}

    def set_alarm_state(self, **kwargs: Any) -> None:
        self.states.append((kwargs["AlarmName"], kwargs["StateValue"]))

    def describe_alarm_history(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["HistoryItemType"] == "Action"
        if self.outcome is None or ("a-iterator-age", "ALARM") not in self.states:
            return {"AlarmHistoryItems": []}
        summary = {SUCCEEDED: f"Successfully executed action {TOPIC}",
                   FAILED: f"Failed to execute action {TOPIC}"}[self.outcome]
        data = {"actionState": "Succeeded" if self.outcome == SUCCEEDED else "Failed",
                "error": "" if self.outcome == SUCCEEDED else "not authorized to perform SNS:Publish"}
        return {"AlarmHistoryItems": [{"AlarmName": kwargs["AlarmName"],
                                       "HistoryItemType": "Action", "HistorySummary": summary,
                                       "HistoryData": json.dumps(data)}]}


@dataclass(frozen=True)
class _Aws(AwsAccess):
    fake: Any = None

    def client(self, service: str) -> Any:
        assert service == "cloudwatch"
        return self.fake


async def _run(fake: FakeCloudWatch, *, endpoint: str | None = None,
               topic: str | None = TOPIC, seconds: float = 3.0) -> str:
    aws = _Aws("us-east-1", "stream", "table", endpoint, {}, topic, fake=fake)
    session = Session(Target("wss://example.invalid/dev", aws=aws))
    session.deadline = asyncio.get_running_loop().time() + seconds
    return await check_alarm(session)


async def test_a_delivered_notification_passes_and_the_alarm_is_reset() -> None:
    fake = FakeCloudWatch(SUCCEEDED)
    detail = await _run(fake)
    assert "a-iterator-age set to ALARM: Successfully executed action" in detail
    assert fake.states == [("a-iterator-age", "OK"), ("a-iterator-age", "ALARM"),
                           ("a-iterator-age", "OK")]


async def test_a_failed_publish_fails_with_what_cloudwatch_said() -> None:
    fake = FakeCloudWatch(FAILED)
    with pytest.raises(CheckFailed, match=r"Failed to execute action.*not authorized"):
        await _run(fake)
    assert fake.states[-1] == ("a-iterator-age", "OK")


async def test_no_action_before_the_deadline_fails() -> None:
    with pytest.raises(CheckFailed, match="no action in its history"):
        await _run(FakeCloudWatch(None), seconds=0.5)


async def test_skipped_on_the_twin_and_without_the_topic() -> None:
    with pytest.raises(CheckSkipped, match="the twin has no CloudWatch"):
        await _run(FakeCloudWatch(SUCCEEDED), endpoint="http://127.0.0.1:4566")
    with pytest.raises(CheckSkipped, match="AlarmTopicArn"):
        await _run(FakeCloudWatch(SUCCEEDED), topic=None)


def test_action_outcome_reads_history_data_then_the_summary() -> None:
    assert action_outcome({"HistoryItemType": "StateUpdate"}) is None
    assert action_outcome({"HistoryItemType": "Action",
                           "HistoryData": '{"actionState":"Failed"}'}) == FAILED
    assert action_outcome({"HistoryItemType": "Action",
                           "HistorySummary": "Successfully executed action arn:..."}) == SUCCEEDED
