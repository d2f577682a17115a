"""The stage's operations: one dashboard, every consumer alarm routed to one SNS topic."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.registry import load_all
from pipeline.runtime import observability as names

pytestmark = pytest.mark.synth
Resources = dict[str, dict[str, Any]]


def of_type(template: dict[str, Any], kind: str) -> Resources:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    (dashboard,) = of_type(template, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "WebSocketPipeline-dev"
    # DashboardBody is an Fn::Join of literal JSON pieces and tokens: keep the literals, with a
    # placeholder for each token, and parse the result.
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return json.loads(text)  # type: ignore[no-any-return]


def test_dashboard_shows_the_api_and_every_consumer(stack_template: dict[str, Any]) -> None:
    body = dashboard_body(stack_template)
    titles = {w["properties"].get("title") for w in body["widgets"]}
    assert {"API: connects", "API: messages", "API: integration errors",
            "API: client errors"} <= titles
    for spec in load_all():
        for suffix in ("iterator age (ms)", "errors and throttles", "on-failure queue depth",
                       "posts", "stage latency p99 (ms)"):
            assert f"{spec.name}: {suffix}" in titles
    metrics = [m for w in body["widgets"] for m in w["properties"].get("metrics", [])]
    flat = [json.dumps(m) for m in metrics]
    # the runtime's own EMF metrics, by the names observability.py emits, per service
    for name in (names.POSTS_DELIVERED, names.POSTS_GONE, names.POST_RETRIES,
                 names.GATEWAY_TO_POST_MS):
        assert any(f'"WebSocketPipeline", "{name}", "service", "echo"' in m for m in flat), name
    for api_metric in ("ConnectCount", "MessageCount", "IntegrationError", "ClientError"):
        assert any(f'"AWS/ApiGateway", "{api_metric}", "ApiId"' in m for m in flat), api_metric


def test_every_alarm_notifies_the_topic(stack_template: dict[str, Any]) -> None:
    (topic_id,) = of_type(stack_template, "AWS::SNS::Topic")
    alarms = of_type(stack_template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 3 * len(load_all())
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    # no address given: no subscription; the topic refuses plain-HTTP publishers
    assert of_type(stack_template, "AWS::SNS::Subscription") == {}
    (policy,) = of_type(stack_template, "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport":
                                                                    "false"}}
               for s in statements)
    assert "AlarmTopicArn" in stack_template["Outputs"]


def test_errors_alarm_fires_on_repeated_failures(stack_template: dict[str, Any]) -> None:
    errors = [a["Properties"] for a in of_type(stack_template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["MetricName"] == "Errors"]
    assert len(errors) == len(load_all())
    assert all((a["EvaluationPeriods"], a["DatapointsToAlarm"], a["Threshold"]) == (5, 3, 0)
               for a in errors)
