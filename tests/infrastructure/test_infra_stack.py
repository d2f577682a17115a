"""The synthesized `dev` template (one session synth): the properties the design depends on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from pipeline.registry import load_all

pytestmark = pytest.mark.synth

Resources = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def template(stack_template: dict[str, object]) -> Template:
    return Template.from_json(stack_template)


@pytest.fixture(scope="module")
def resources(stack_template: dict[str, object]) -> Resources:
    return stack_template["Resources"]  # type: ignore[return-value]


def of_type(resources: Resources, kind: str) -> Resources:
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def ref_id(value: Any) -> str:
    """The logical id a Ref / GetAtt points at."""
    if "Ref" in value:
        return str(value["Ref"])
    return str(value["Fn::GetAtt"][0])


def test_no_route_integration_is_a_lambda_or_proxy(resources: Resources) -> None:
    integrations = of_type(resources, "AWS::ApiGatewayV2::Integration")
    mocks = [i for i in integrations.values() if i["Properties"]["IntegrationType"] == "MOCK"]
    assert len(mocks) == 2  # ping and whoami (tests/infrastructure/test_infra_keepalive.py)
    integrations = {k: i for k, i in integrations.items() if i not in mocks}
    # one PutItem, one PutRecord shared by the one-way stream routes, one PutRecord with the
    # ack/nack integration responses for the acked routes (docs/acks.md)
    assert len(integrations) == 3
    for integration in integrations.values():
        props = integration["Properties"]
        assert props["IntegrationType"] == "AWS"
        assert ":lambda:" not in json.dumps(props["IntegrationUri"])
        assert props["PassthroughBehavior"] == "NEVER"
        assert props["TemplateSelectionExpression"] == "\\$default"
        assert list(props["RequestTemplates"]) == ["$default"]


def test_routes_are_connect_disconnect_default_and_every_consumer_route(
    resources: Resources,
) -> None:
    keys = {r["Properties"]["RouteKey"] for r in of_type(resources, "AWS::ApiGatewayV2::Route").values()}
    custom = {route for spec in load_all() for route in spec.api_routes}
    assert keys == {"$connect", "$disconnect", "$default", "ping", "whoami", *custom}
    api = next(iter(of_type(resources, "AWS::ApiGatewayV2::Api").values()))["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"


def _integration_for(resources: Resources, route_key: str) -> dict[str, Any]:
    route = next(
        r for r in of_type(resources, "AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["RouteKey"] == route_key
    )
    target = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
    return resources[target]["Properties"]  # type: ignore[no-any-return]


def test_stream_routes_put_records_keyed_by_connection_id(resources: Resources) -> None:
    for route_key in ("$default", "$disconnect", "echo"):
        props = _integration_for(resources, route_key)
        assert "kinesis:action/PutRecord" in json.dumps(props["IntegrationUri"])
        text = json.dumps(props["RequestTemplates"]["$default"])
        assert "PartitionKey" in text
        assert "$context.connectionId" in text
        assert "@@" not in text  # every placeholder substituted
        assert {"Ref": _stream_id(resources)} in props["RequestTemplates"]["$default"]["Fn::Join"][1]


def test_connect_writes_the_roster_with_put_item(resources: Resources) -> None:
    props = _integration_for(resources, "$connect")
    assert "dynamodb:action/PutItem" in json.dumps(props["IntegrationUri"])
    parts = props["RequestTemplates"]["$default"]["Fn::Join"][1]
    assert {"Ref": _table_id(resources)} in parts
    assert "10800" in "".join(p for p in parts if isinstance(p, str))
    assert "@@" not in json.dumps(parts)


def _stream_id(resources: Resources) -> str:
    return next(iter(of_type(resources, "AWS::Kinesis::Stream")))


def _table_id(resources: Resources) -> str:
    return next(iter(of_type(resources, "AWS::DynamoDB::GlobalTable")))


def test_credentials_role_allows_exactly_put_record_and_put_item(resources: Resources) -> None:
    integrations = of_type(resources, "AWS::ApiGatewayV2::Integration").values()
    roles = {ref_id(i["Properties"]["CredentialsArn"]) for i in integrations
             if i["Properties"]["IntegrationType"] != "MOCK"}
    assert len(roles) == 1
    role = roles.pop()
    assert resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0][
        "Principal"
    ] == {"Service": "apigateway.amazonaws.com"}
    assert "ManagedPolicyArns" not in resources[role]["Properties"]
    policies = [
        p for p in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    granted = sorted(
        (s["Action"], ref_id(s["Resource"])) for s in statements if s["Effect"] == "Allow"
    )
    assert granted == [
        ("dynamodb:PutItem", _table_id(resources)),
        ("kinesis:PutRecord", _stream_id(resources)),
    ]


def test_every_mapping_reads_a_stream_consumer_with_bounded_failure_handling(
    resources: Resources,
) -> None:
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(load_all())
    consumers = of_type(resources, "AWS::Kinesis::StreamConsumer")
    for mapping in mappings.values():
        props = mapping["Properties"]
        source = props["EventSourceArn"]["Fn::GetAtt"]
        assert source[0] in consumers and source[1] == "ConsumerARN"
        assert props["BisectBatchOnFunctionError"] is True
        assert 0 <= props["MaximumRetryAttempts"] <= 10_000
        assert 60 <= props["MaximumRecordAgeInSeconds"] <= 604_800
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        destination = ref_id(props["DestinationConfig"]["OnFailure"]["Destination"])
        assert resources[destination]["Type"] == "AWS::SQS::Queue"
        assert len(props["FilterCriteria"]["Filters"]) == 1


def test_filters_follow_the_contract(resources: Resources, template: Template) -> None:
    for spec in load_all():
        pattern = {"data": {"routeKey": list(spec.filter_route_keys)}}
        template.has_resource_properties(
            "AWS::Lambda::EventSourceMapping",
            {
                "FilterCriteria": {"Filters": [{"Pattern": json.dumps(pattern, separators=(",", ":"))}]},
                "BatchSize": spec.batch_size,
                "ParallelizationFactor": spec.parallelization_factor,
                "StartingPosition": spec.starting_position,
            },
        )


def test_consumer_functions_are_arm64_python_with_the_layer_and_contract_env(
    resources: Resources,
) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    # consumer functions only (with 6+ consumers the stack adds the waiter's, without env)
    by_service = {f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: f
                  for f in functions.values()
                  if "POWERTOOLS_SERVICE_NAME" in f["Properties"].get("Environment", {}).get(
                      "Variables", {})}
    specs = {s.name: s for s in load_all()}
    assert set(by_service) == set(specs)
    for name, function in by_service.items():
        props = function["Properties"]
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == "python3.12"
        assert props["Handler"] == "handler.lambda_handler"
        assert len(props["Layers"]) == 1
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "WebSocketPipeline"
        assert env["LOG_LEVEL"] == "INFO"
        assert {"Ref": _stream_id(resources)} == env["STREAM_NAME"]
        assert "execute-api" in json.dumps(env["CONNECTIONS_ENDPOINT_URL"])
        assert ("ROSTER_TABLE_NAME" in env) == (specs[name].roster != "none")


def test_on_failure_queues_are_encrypted_and_ssl_only(template: Template) -> None:
    template.all_resources_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True})
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with([
                    Match.object_like({
                        "Effect": "Deny",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    })
                ])
            }
        },
    )


def test_alarms_watch_iterator_age_dlq_depth_and_errors(resources: Resources) -> None:
    metrics = sorted(
        a["Properties"]["MetricName"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
    )
    n = len(load_all())
    assert metrics == (["ApproximateNumberOfMessagesVisible"] * n + ["Errors"] * n
                       + ["IteratorAge"] * n)


def test_roster_table_ttl_pitr_on_demand_encrypted(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "Replicas": [
                Match.object_like({
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}
                })
            ],
        },
    )


def test_stream_is_provisioned_encrypted_with_default_shards(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "ShardCount": 2,
            "RetentionPeriodHours": 24,
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
        },
    )


def test_stage_is_named_for_the_stage_throttled_and_access_logged(resources: Resources) -> None:
    stage = next(iter(of_type(resources, "AWS::ApiGatewayV2::Stage").values()))["Properties"]
    assert stage["StageName"] == "dev"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    log_format = json.loads(stage["AccessLogSettings"]["Format"])
    for field in ("requestId", "connectionId", "routeKey", "status", "integrationLatency"):
        assert field in log_format
    assert resources[ref_id(stage["AccessLogSettings"]["DestinationArn"])]["Type"] == "AWS::Logs::LogGroup"


def test_dev_connect_has_no_authorizer(resources: Resources) -> None:
    assert of_type(resources, "AWS::ApiGatewayV2::Authorizer") == {}
    for route in of_type(resources, "AWS::ApiGatewayV2::Route").values():
        assert route["Properties"]["AuthorizationType"] == "NONE"


def test_outputs(stack_template: dict[str, Any]) -> None:
    outputs = stack_template["Outputs"]
    assert {"WebSocketUrl", "ConnectionsUrl", "StreamName", "RosterTableName"} <= set(outputs)
    assert json.dumps(outputs["WebSocketUrl"]).startswith('{"Value": {"Fn::Join": ["", ["wss://"')


def test_each_consumer_function_is_tagged_with_its_consumer(resources: Resources) -> None:
    # how redrive finds a consumer's function, on AWS (Lambda's tags) and in the twin's template
    from pipeline.names import CONSUMER_TAG

    tagged = sorted(
        tag["Value"]
        for function in of_type(resources, "AWS::Lambda::Function").values()
        for tag in function["Properties"].get("Tags", [])
        if tag["Key"] == CONSUMER_TAG
    )
    assert tagged == sorted(spec.name for spec in load_all())
    tagged_other = [r for r in resources.values() if r["Type"] != "AWS::Lambda::Function"
                    and any(t.get("Key") == CONSUMER_TAG for t in r["Properties"].get("Tags", [])
                            if isinstance(t, dict))]
    assert tagged_other == []
