"""The alarm topic accepts CloudWatch's publishes (issue 21, finding 1).

``enforce_ssl`` makes a topic policy that replaces SNS's default one; without an Allow for
``cloudwatch.amazonaws.com`` every alarm notification fails (AWS Knowledge Center
"cloudwatch-receive-sns-for-alarm-trigger"). Built in a bare stack, as the construct is.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import App, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk.assertions import Match, Template

from pipeline.infrastructure.operations_dashboard import OperationsDashboard


def _template() -> Template:
    stack = Stack(App(), "Ops")
    api = apigwv2.WebSocketApi(stack, "Api")
    stage = apigwv2.WebSocketStage(stack, "Stage", web_socket_api=api, stage_name="dev")
    OperationsDashboard(stack, "Operations", stage_name="dev", stage=stage, services=[])
    return Template.from_stack(stack)


def _statements(template: Template) -> list[dict[str, Any]]:
    (policy,) = template.find_resources("AWS::SNS::TopicPolicy").values()
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_cloudwatch_alarms_of_this_account_may_publish_to_the_topic() -> None:
    template = _template()
    template.has_resource_properties("AWS::SNS::TopicPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                "ArnLike": {"aws:SourceArn": Match.any_value()},
            },
        })])},
    })


def test_the_allow_is_scoped_to_alarm_arns_and_the_ssl_deny_stays() -> None:
    statements = _statements(_template())
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    source = allow["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
    assert ":cloudwatch:" in source and ":alarm:*" in source
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
