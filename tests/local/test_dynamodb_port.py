"""DynamoDB on the AWS port without Flask answers and writes as moto's server app does: the plain
BatchWriteItem and Query straight to the backend, every other DynamoDB request through moto's
in-process request path."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto.backends import get_backend
from stacks import ROSTER_KEYS, aws_services

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local import dynamodb_port
from pipeline.local.cfn import resolve_stack
from pipeline.local.ddb_query import IndexedQueryTable
from pipeline.local.dynamodb_port import DynamoDbPort
from pipeline.local.moto_dispatch import RememberingDispatcher
from pipeline.local.services import AwsServices

KEYS = ROSTER_KEYS
TABLES = ("Port", "Port2", "Moto", "Moto2")
HASH_ONLY = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
             "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
             "BillingMode": "PAY_PER_REQUEST"}
TEMPLATE = {"Resources": {
    **{name: {"Type": "AWS::DynamoDB::Table", "Properties": KEYS} for name in TABLES},
    **{name: {"Type": "AWS::DynamoDB::Table", "Properties": HASH_ONLY}
       for name in ("PortH", "MotoH")}}}


def member(room: str, cid: str, **extra: Any) -> dict[str, Any]:
    return {"pk": {"S": f"ROOM#{room}"}, "sk": {"S": f"MEMBER#{cid}"},
            "connectionId": {"S": cid}, "joinedAt": {"N": "1700000000000"}, **extra}


def put(item: dict[str, Any]) -> dict[str, Any]:
    return {"PutRequest": {"Item": item}}


def delete(item: dict[str, Any]) -> dict[str, Any]:
    return {"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}}


A, B, C = member("r", "a"), member("r", "b"), member("r", "c", principalKey={"S": "alice"})
# T and T2 stand for a table of the pair under test (the port's or moto's)
BATCHES: list[tuple[str, Any]] = [
    ("one put", {"RequestItems": {"T": [put(A)]}}),
    ("puts and deletes", {"RequestItems": {"T": [put(A), put(C), delete(B)]}}),
    ("two tables", {"RequestItems": {"T": [put(A)], "T2": [put(B), delete(C)]}}),
    ("25 requests", {"RequestItems": {"T": [put(member("r", f"m{i}")) for i in range(25)]}}),
    ("26 requests", {"RequestItems": {"T": [put(member("r", f"m{i}")) for i in range(26)]}}),
    ("typed values", {"RequestItems": {"T": [put(member("r", "t", ok={"BOOL": False},
                                                          none={"NULL": True},
                                                          neg={"N": "-5"}))]}}),
    ("duplicate put", {"RequestItems": {"T": [put(A), put(A)]}}),
    ("same key twice", {"RequestItems": {"T": [put(A), put({**A, "x": {"S": "y"}})]}}),
    ("duplicate delete", {"RequestItems": {"T": [delete(A), delete(A)]}}),
    ("put and delete of one key", {"RequestItems": {"T": [put(A), delete(A)]}}),
    ("empty hash key", {"RequestItems": {"T": [put({**A, "pk": {"S": ""}})]}}),
    ("empty index key", {"RequestItems": {"T": [put({**A, "principalKey": {"S": ""}})]}}),
    ("missing range key", {"RequestItems": {"T": [put({"pk": {"S": "ROOM#r"}})]}}),
    ("number as a key", {"RequestItems": {"T": [put({**A, "sk": {"N": "1"}})]}}),
    ("delete with more than the key", {"RequestItems": {"T": [{"DeleteRequest": {"Key": A}}]}}),
    ("decimal", {"RequestItems": {"T": [put({**A, "n": {"N": "1.5"}})]}}),
    ("a list", {"RequestItems": {"T": [put({**A, "l": {"L": [{"S": "x"}]}})]}}),
    ("a map", {"RequestItems": {"T": [put({**A, "m": {"M": {"k": {"S": "v"}}}})]}}),
    ("too large", {"RequestItems": {"T": [put(B), put({**A, "big": {"S": "x" * 410_000}})]}}),
    ("missing table", {"RequestItems": {"nowhere": [put(A)]}}),
    ("no requests", {"RequestItems": {"T": []}}),
    ("no tables", {"RequestItems": {}}),
    ("consumed capacity", {"RequestItems": {"T": [put(A)]}, "ReturnConsumedCapacity": "TOTAL"}),
    ("two kinds in one request", {"RequestItems": {"T": [{**put(A), **delete(B)}]}}),
    ("not JSON", b"{"),  # moto's server: 500 (a KeyError); see the test below
]
OTHERS: list[tuple[str, str, Any]] = [
    ("Query", "query", {"TableName": "T", "KeyConditionExpression": "pk = :pk",
                        "ExpressionAttributeValues": {":pk": {"S": "ROOM#r"}}}),
    ("Query", "query with a limit", {
        "TableName": "T", "KeyConditionExpression": "pk = :pk", "Limit": 1,
        "ExpressionAttributeValues": {":pk": {"S": "ROOM#r"}}, "ProjectionExpression": "sk"}),
    ("Query", "bad key condition", {"TableName": "T", "KeyConditionExpression": "pk = :pk"}),
    ("GetItem", "get", {"TableName": "T", "Key": {"pk": A["pk"], "sk": A["sk"]}}),
    ("PutItem", "put item", {"TableName": "T", "Item": C}),
    ("DeleteItem", "delete item", {"TableName": "T", "Key": {"pk": A["pk"], "sk": A["sk"]}}),
    ("UpdateItem", "update", {"TableName": "T", "Key": {"pk": A["pk"], "sk": A["sk"]},
                              "UpdateExpression": "SET n = :n",
                              "ExpressionAttributeValues": {":n": {"N": "2"}}}),
    ("Scan", "scan", {"TableName": "T"}),
    ("DescribeTable", "describe missing", {"TableName": "nowhere"}),
    ("NoSuchThing", "unknown operation", {}),  # moto's server: 500; see the test
]


ROOM = {":p": {"S": "ROOM#q"}}
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("partition", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM}),
    ("spaces", {"KeyConditionExpression": "  pk=:p ", "ExpressionAttributeValues": ROOM}),
    ("missing partition", {"KeyConditionExpression": "pk = :p",
                           "ExpressionAttributeValues": {":p": {"S": "ROOM#none"}}}),
    ("limit", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
               "Limit": 7}),
    ("limit, backwards, consistent", {
        "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM, "Limit": 5,
        "ScanIndexForward": False, "ConsistentRead": True}),
    ("limit of all", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
                      "Limit": 30}),
    ("projection", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
                    "ProjectionExpression": "connectionId"}),
    ("projection of two", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
                           "ProjectionExpression": "sk, joinedAt,nope", "Limit": 3}),
    ("reserved word", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
                       "ProjectionExpression": "name"}),
    ("placeholder name", {"KeyConditionExpression": "#k = :p", "ExpressionAttributeValues": ROOM,
                          "ExpressionAttributeNames": {"#k": "pk"}}),
    ("range condition", {"KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
                         "ExpressionAttributeValues": {**ROOM, ":s": {"S": "MEMBER#q1"}}}),
    ("not the partition key", {"KeyConditionExpression": "sk = :p",
                               "ExpressionAttributeValues": ROOM}),
    ("number for a string key", {"KeyConditionExpression": "pk = :p",
                                 "ExpressionAttributeValues": {":p": {"N": "1"}}}),
    ("unused value", {"KeyConditionExpression": "pk = :p",
                      "ExpressionAttributeValues": {**ROOM, ":x": {"S": "y"}}}),
    ("filter", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
                "FilterExpression": "attribute_exists(joinedAt)"}),
    ("count", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
               "Select": "COUNT"}),
    ("index", {"IndexName": "byPrincipal", "KeyConditionExpression": "principalKey = :u",
               "ExpressionAttributeValues": {":u": {"S": "alice"}}}),
    ("limit zero", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
                    "Limit": 0}),
    ("start key", {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
                   "Limit": 4, "ExclusiveStartKey": {"pk": {"S": "ROOM#q"},
                                                     "sk": {"S": "MEMBER#q13"}}}),
    ("start key backwards", {
        "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM, "Limit": 4,
        "ScanIndexForward": False,
        "ExclusiveStartKey": {"pk": {"S": "ROOM#q"}, "sk": {"S": "MEMBER#q13"}}}),
    ("start key of another partition", {
        "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM, "Limit": 4,
        "ExclusiveStartKey": {"pk": {"S": "ROOM#r"}, "sk": {"S": "MEMBER#a"}}}),
    ("start key without its range", {
        "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": ROOM,
        "ExclusiveStartKey": {"pk": {"S": "ROOM#q"}}}),
]
MOTO_FAILS = {"start key without its range"}
# the partition the queries read: plain members, one with a list (moto's serializer writes it)
PARTITION = [member("q", f"q{i}", **({"principalKey": {"S": "alice"}} if i % 3 else {}))
             for i in range(25)]


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[AwsServices, dict[str, str]]]:
    stack = resolve_stack(TEMPLATE, "DynamoPort", Path("/nowhere"))
    with aws_services(stack) as svc:
        yield svc, {name: stack.resources[name].ref for name in (*TABLES, "PortH", "MotoH")}


def environ(target: str, body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "", "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "4566", "HTTP_HOST": "127.0.0.1:4566",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(), "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.version": (1, 0), "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/x-amz-json-1.0",
        "HTTP_X_AMZ_TARGET": f"DynamoDB_20120810.{target}",
        "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/"
                              "aws4_request, SignedHeaders=host;x-amz-target, Signature=0"}


def call(app: Any, target: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    started: list[Any] = []
    data = b"".join(app(environ(target, body), lambda s, h, e=None: started.append((s, h))))
    status, headers = started[0]
    return int(status.split()[0]), {k.lower(): v for k, v in headers}, data


def body_for(request: Any, names: dict[str, str], first: str, second: str) -> bytes:
    if isinstance(request, bytes):
        return request
    text = orjson.dumps(request).decode()
    return text.replace('"T"', f'"{names[first]}"').replace('"T2"', f'"{names[second]}"').encode()


def stored(app: Any, table: str) -> list[Any]:
    _, _, data = call(app, "Scan", orjson.dumps({"TableName": table}))
    return sorted(orjson.loads(data)["Items"], key=orjson.dumps)


def empty(app: Any, names: dict[str, str]) -> None:
    for name in names.values():
        for item in stored(app, name):
            call(app, "DeleteItem", orjson.dumps(
                {"TableName": name, "Key": {"pk": item["pk"], "sk": item["sk"]}}))


def request_paths(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies of the requests that take moto's request path from now on."""
    taken: list[bytes] = []
    original = dynamodb_port._request_path

    def counted(env: dict[str, Any], body: bytes) -> Any:
        taken.append(body)
        return original(env, body)

    monkeypatch.setattr(dynamodb_port, "_request_path", counted)
    return taken


def same_answer(ours: tuple[int, dict[str, str], bytes], theirs: tuple[int, dict[str, str], bytes],
                names: dict[str, str]) -> None:
    assert ours[0] == theirs[0]
    assert ours[1].get("x-amzn-errortype") == theirs[1].get("x-amzn-errortype")
    for name in ("content-type", "server", "x-amzn-requestid", "x-amz-crc32", "content-length"):
        assert (name in ours[1]) == (name in theirs[1]), name
    assert int(ours[1]["content-length"]) == len(ours[2])
    if "x-amz-crc32" in ours[1]:  # what botocore checks
        import zlib

        assert int(ours[1]["x-amz-crc32"]) == zlib.crc32(ours[2])
    text = ours[2].decode()
    for ref, other in (("Port", "Moto"), ("Port2", "Moto2"), ("PortH", "MotoH")):
        text = text.replace(names[ref], names[other])
    assert orjson.loads(text) == orjson.loads(theirs[2]) if theirs[2] else text == ""


@pytest.mark.parametrize(("name", "request_"), BATCHES, ids=[b[0] for b in BATCHES])
def test_a_batch_write_answers_and_writes_as_moto_s_server(
        services: tuple[AwsServices, dict[str, str]], name: str, request_: Any) -> None:
    _, names = services
    moto = RememberingDispatcher()
    port = DynamoDbPort(moto)
    empty(moto, names)
    for table in ("Port", "Moto"):  # something to delete
        call(moto, "PutItem", orjson.dumps({"TableName": names[table], "Item": B}))
    ours = call(port, "BatchWriteItem", body_for(request_, names, "Port", "Port2"))
    if name == "not JSON":
        assert (ours[0], ours[1]["x-amzn-errortype"]) == (400, "SerializationException")
        assert orjson.loads(ours[2])["__type"].endswith("#SerializationException")
        return
    theirs = call(moto, "BatchWriteItem", body_for(request_, names, "Moto", "Moto2"))
    same_answer(ours, theirs, names)
    assert stored(moto, names["Port"]) == stored(moto, names["Moto"]), name
    assert stored(moto, names["Port2"]) == stored(moto, names["Moto2"]), name


@pytest.mark.parametrize(("target", "name", "request_"), OTHERS, ids=[o[1] for o in OTHERS])
def test_other_requests_answer_and_write_as_moto_s_server(
        services: tuple[AwsServices, dict[str, str]], target: str, name: str,
        request_: Any) -> None:
    _, names = services
    moto = RememberingDispatcher()
    port = DynamoDbPort(moto)
    empty(moto, names)
    for table in ("Port", "Moto"):
        for item in (A, B):
            call(moto, "PutItem", orjson.dumps({"TableName": names[table], "Item": item}))
    ours = call(port, target, body_for(request_, names, "Port", "Port2"))
    if name == "unknown operation":
        assert (ours[0], ours[1]["x-amzn-errortype"]) == (400, "UnknownOperationException")
        return
    theirs = call(moto, target, body_for(request_, names, "Moto", "Moto2"))
    same_answer(ours, theirs, names)
    assert stored(moto, names["Port"]) == stored(moto, names["Moto"]), name


def test_only_a_plain_batch_write_or_query_skips_the_request_path(
        services: tuple[AwsServices, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    _, names = services
    port = DynamoDbPort(RememberingDispatcher())
    taken = request_paths(monkeypatch)
    table = names["Port"]
    assert call(port, "BatchWriteItem", orjson.dumps(
        {"RequestItems": {table: [put(A), delete(B)]}}))[0] == 200
    assert taken == []
    call(port, "BatchWriteItem", orjson.dumps(
        {"RequestItems": {table: [put({**A, "n": {"N": "1.5"}})]}}))
    call(port, "Query", orjson.dumps({"TableName": table, "KeyConditionExpression": "pk = :p",
                                      "ExpressionAttributeValues": {":p": A["pk"]},
                                      "FilterExpression": "attribute_exists(sk)"}))
    call(port, "GetItem", orjson.dumps({"TableName": table, "Key": {"pk": A["pk"],
                                                                    "sk": A["sk"]}}))
    assert len(taken) == 3


def test_requests_for_other_services_go_to_moto_s_server(
        services: tuple[AwsServices, dict[str, str]]) -> None:
    seen: list[str] = []

    def other(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(str(env.get("HTTP_X_AMZ_TARGET")))
        start_response("200 OK", [])
        return [b""]

    port = DynamoDbPort(other)
    env = environ("ListTables", b"{}")
    env["HTTP_X_AMZ_TARGET"] = "AmazonSQS.ListQueues"
    port(env, lambda *a: None)
    get = environ("ListTables", b"")
    get["REQUEST_METHOD"] = "GET"
    port(get, lambda *a: None)
    assert seen == ["AmazonSQS.ListQueues", "DynamoDB_20120810.ListTables"]


def test_boto3_over_the_port_reads_back_what_it_wrote(
        services: tuple[AwsServices, dict[str, str]]) -> None:
    svc, names = services
    ddb = boto3.client("dynamodb", endpoint_url=svc.url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    table = names["Port"]
    items = [member("boto", f"c{i}") for i in range(25)]
    answer = ddb.batch_write_item(RequestItems={table: [put(i) for i in items]})
    assert answer["UnprocessedItems"] == {}  # botocore checked the CRC32 of the answer
    read = ddb.query(TableName=table, KeyConditionExpression="pk = :pk",
                     ExpressionAttributeValues={":pk": {"S": "ROOM#boto"}})
    assert read["Items"] == sorted(items, key=lambda i: i["sk"]["S"])
    ddb.batch_write_item(RequestItems={table: [delete(i) for i in items]})
    assert ddb.query(TableName=table, KeyConditionExpression="pk = :pk", Select="COUNT",
                     ExpressionAttributeValues={":pk": {"S": "ROOM#boto"}})["Count"] == 0


@pytest.mark.parametrize("with_list", [False, True], ids=["plain items", "an item with a list"])
@pytest.mark.parametrize(("name", "request_"), QUERIES, ids=[q[0] for q in QUERIES])
def test_a_query_answers_as_moto_s_server(
        services: tuple[AwsServices, dict[str, str]], name: str, request_: dict[str, Any],
        with_list: bool) -> None:
    _, names = services
    moto = RememberingDispatcher()
    port = DynamoDbPort(moto)
    empty(moto, names)
    items = [*PARTITION, *([member("q", "q7x", tags={"L": [{"S": "a"}]})] if with_list else [])]
    for table in ("Port", "Moto"):
        for item in [*items, A]:
            call(moto, "PutItem", orjson.dumps({"TableName": names[table], "Item": item}))
    ours = call(port, "Query", body_for({"TableName": "T", **request_}, names, "Port", "Port2"))
    if name == "limit zero":  # moto fails on it (an IndexError); DynamoDB's answer
        assert (ours[0], ours[1]["x-amzn-errortype"]) == (400, "ValidationException")
        assert "greater than or equal to 1" in orjson.loads(ours[2])["message"]
        return
    try:
        theirs = call(moto, "Query", body_for({"TableName": "T", **request_}, names, "Moto",
                                              "Moto2"))
    except (TypeError, KeyError, ValueError):  # moto fails (its server: a 500 page)
        assert name in MOTO_FAILS
        assert (ours[0], ours[1]["x-amzn-errortype"]) == (500, "InternalServerError")
        return
    same_answer(ours, theirs, names)


def test_a_plain_query_skips_the_request_path_and_pages_as_moto_does(
        services: tuple[AwsServices, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    _, names = services
    moto = RememberingDispatcher()
    empty(moto, names)
    for table in ("Port", "Moto"):
        for item in PARTITION:
            call(moto, "PutItem", orjson.dumps({"TableName": names[table], "Item": item}))
    taken = request_paths(monkeypatch)
    port = DynamoDbPort(moto)
    pages: dict[str, list[Any]] = {"Port": [], "Moto": []}
    for table, app in (("Port", port), ("Moto", moto)):
        start = None
        for _ in range(20):  # bounded: 25 items, pages of 4
            request = {"TableName": names[table], "KeyConditionExpression": "pk = :p",
                       "ExpressionAttributeValues": ROOM, "Limit": 4,
                       "ProjectionExpression": "connectionId",
                       **({"ExclusiveStartKey": start} if start else {})}
            page = orjson.loads(call(app, "Query", orjson.dumps(request))[2])
            pages[table].append(page)
            start = page.get("LastEvaluatedKey")
            if start is None:
                break
    assert taken == []
    backend = get_backend("dynamodb")[ACCOUNT_ID][REGION]
    assert isinstance(backend.get_table(names["Port"]), IndexedQueryTable)  # its kept order read
    assert len(pages["Port"]) == 7  # 6 full pages and the last
    assert [p["Items"] for p in pages["Port"]] == [p["Items"] for p in pages["Moto"]]
    assert [p.get("LastEvaluatedKey") for p in pages["Port"]] == [
        p.get("LastEvaluatedKey") for p in pages["Moto"]]


def test_pages_of_a_megabyte_and_odd_numbers_answer_as_moto_s_server(
        services: tuple[AwsServices, dict[str, str]]) -> None:
    """moto ends a page before the item that takes it over 1 MB of item sizes; a projected
    number moto rewrites (through Decimal) is answered by moto's path."""
    _, names = services
    moto = RememberingDispatcher()
    port = DynamoDbPort(moto)
    empty(moto, names)
    big = [member("q", f"b{i:02d}", blob={"S": "x" * 90_000}, n={"N": "1.50" if i == 3 else str(i)})
           for i in range(25)]
    for table in ("Port", "Moto"):
        for item in big:
            call(moto, "PutItem", orjson.dumps({"TableName": names[table], "Item": item}))
    for extra in ({}, {"ScanIndexForward": False}, {"ProjectionExpression": "sk, n"},
                  {"ProjectionExpression": "sk, blob", "Limit": 20}):
        pages = {}
        for table, app in (("Port", port), ("Moto", moto)):
            pages[table], start = [], None
            for _ in range(10):  # bounded: 25 items of 90 KB, pages of about 1 MB
                request = {"TableName": names[table], "KeyConditionExpression": "pk = :p",
                           "ExpressionAttributeValues": ROOM, **extra,
                           **({"ExclusiveStartKey": start} if start else {})}
                page = orjson.loads(call(app, "Query", orjson.dumps(request))[2])
                pages[table].append(page)
                start = page.get("LastEvaluatedKey")
                if start is None:
                    break
        assert pages["Port"] == pages["Moto"], extra
        if "ProjectionExpression" not in extra:
            assert len(pages["Port"]) == 3  # 11 items make a page


def test_a_table_without_a_range_key_answers_as_moto_s_server(
        services: tuple[AwsServices, dict[str, str]]) -> None:
    _, names = services
    moto = RememberingDispatcher()
    port = DynamoDbPort(moto)
    item = {"pk": {"S": "CONN#a"}, "n": {"N": "7"}, "ok": {"BOOL": True}}
    for table in ("PortH", "MotoH"):
        call(moto, "PutItem", orjson.dumps({"TableName": names[table], "Item": item}))
    key = {":p": {"S": "CONN#a"}}
    for extra in ({}, {"Limit": 1}, {"ExclusiveStartKey": {"pk": {"S": "CONN#a"}}},
                  {"ProjectionExpression": "n"}):
        ours, theirs = (call(app, "Query", body_for(
            {"TableName": table, "KeyConditionExpression": "pk = :p",
             "ExpressionAttributeValues": key, **extra}, names, "Port", "Port2"))
            for table, app in ((names["PortH"], port), (names["MotoH"], moto)))
        same_answer(ours, theirs, names)
