"""The door's plain PutItem (each ``$connect``'s roster write) answers and writes as moto's own
request path does; anything else still takes that path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from stacks import ROSTER_KEYS, aws_services

from pipeline.local.aws_door import AwsDoor
from pipeline.local.cfn import resolve_stack
from pipeline.local.services import AwsServices

KEYS = ROSTER_KEYS
TEMPLATE = {"Resources": {name: {"Type": "AWS::DynamoDB::Table", "Properties": KEYS}
                          for name in ("Fast", "Moto")}}
META = {"pk": {"S": "CONN#a"}, "sk": {"S": "META"}, "connectionId": {"S": "a"},
        "connectedAt": {"N": "1700000000000"}, "sourceIp": {"S": "203.0.113.7"},
        "principal": {"S": ""}, "expiresAt": {"N": "1700010800"}}

CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain", {"Item": META}),
    ("plain with principal", {"Item": {**META, "principalKey": {"S": "alice"},
                                       "ok": {"BOOL": True}, "none": {"NULL": True}}}),
    ("negative and zero", {"Item": {**META, "n": {"N": "-12"}, "z": {"N": "0"}}}),
    ("empty hash key", {"Item": {**META, "pk": {"S": ""}}}),
    ("missing range key", {"Item": {"pk": {"S": "CONN#b"}}}),
    ("number as hash key", {"Item": {**META, "pk": {"N": "1"}}}),
    ("empty index key", {"Item": {**META, "principalKey": {"S": ""}}}),
    ("decimal", {"Item": {**META, "n": {"N": "1.50"}}}),
    ("leading zero", {"Item": {**META, "n": {"N": "007"}}}),
    ("a list", {"Item": {**META, "l": {"L": [{"S": "x"}]}}}),
    ("two types", {"Item": {**META, "x": {"S": "a", "N": "1"}}}),
    ("null false", {"Item": {**META, "x": {"NULL": False}}}),
    ("condition", {"Item": META, "ConditionExpression": "attribute_not_exists(pk)"}),
    ("return values", {"Item": META, "ReturnValues": "ALL_OLD"}),
    ("empty item", {"Item": {}}),
]


@pytest.fixture(scope="module")
def twin() -> Iterator[tuple[AwsServices, str, str]]:
    stack = resolve_stack(TEMPLATE, "DoorPut", Path("/nowhere"))
    with aws_services(stack) as services:
        yield services, stack.resources["Fast"].ref, stack.resources["Moto"].ref


def _stored(door: AwsDoor, table: str) -> list[Any]:
    answer = door._dispatch("dynamodb", "Scan", orjson.dumps({"TableName": table}))
    return sorted(orjson.loads(answer.body)["Items"], key=lambda i: orjson.dumps(i))


@pytest.mark.parametrize(("name", "request_"), CASES, ids=[c[0] for c in CASES])
def test_the_door_answers_and_writes_as_moto_s_request_path(
        twin: tuple[AwsServices, str, str], name: str, request_: dict[str, Any]) -> None:
    services, fast, moto = twin
    door = services.door
    for table in (fast, moto):
        for item in orjson.loads(door._dispatch("dynamodb", "Scan", orjson.dumps(
                {"TableName": table})).body)["Items"]:
            door._dispatch("dynamodb", "DeleteItem", orjson.dumps(
                {"TableName": table, "Key": {"pk": item["pk"], "sk": item["sk"]}}))
    ours = door.call_aws("dynamodb", "PutItem", orjson.dumps({"TableName": fast, **request_}),
                         None)
    theirs = door._dispatch("dynamodb", "PutItem",
                            orjson.dumps({"TableName": moto, **request_}))
    assert (ours.status, ours.error_type) == (theirs.status, theirs.error_type), name
    if ours.status == 200:
        assert orjson.loads(ours.body) == orjson.loads(theirs.body)
    assert _stored(door, fast) == _stored(door, moto)


def test_a_missing_table_answers_as_moto(twin: tuple[AwsServices, str, str]) -> None:
    door = twin[0].door
    answer = door.call_aws("dynamodb", "PutItem",
                           orjson.dumps({"TableName": "nowhere", "Item": META}), None)
    assert (answer.status, answer.error_type) == (400, "ResourceNotFoundException")


def test_only_a_plain_put_skips_the_request_path(
        twin: tuple[AwsServices, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    services, fast, _ = twin
    door = services.door
    dispatched: list[str] = []
    original = door._dispatch

    def counted(service: str, action: str, body: bytes) -> Any:
        dispatched.append(action)
        return original(service, action, body)

    monkeypatch.setattr(door, "_dispatch", counted)
    assert door.call_aws("dynamodb", "PutItem", orjson.dumps(
        {"TableName": fast, "Item": META}), None).status == 200
    assert dispatched == []
    door.call_aws("dynamodb", "PutItem", orjson.dumps(
        {"TableName": fast, "Item": META, "ConditionExpression": "attribute_exists(pk)"}), None)
    assert dispatched == ["PutItem"]
