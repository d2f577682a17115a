"""The runtime's own DynamoDB and Kinesis clients answer as boto3's do, over real HTTP.

The roster and the stream writes use :func:`dynamodb_client` / :func:`kinesis_client` (no boto3).
Each roster operation is run twice against the twin's AWS port, once through the runtime's
client and once through a boto3 client, and must leave the same roster and answer the same; the
clients keep their connections and retry what boto3's standard mode retries.
"""

from __future__ import annotations

import base64
import http.server
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import boto3
import pytest
from runtime_kit.roster_table import TABLE, all_items, create_roster_table, put_meta
from stacks import aws_services

from pipeline.local.services import AwsServices
from pipeline.runtime import Roster, RosterError
from pipeline.runtime.aws_json import (
    JSON_10,
    DynamoDbApi,
    JsonApi,
    dynamodb_client,
    kinesis_client,
    retryable,
)
from pipeline.runtime.credentials import FrozenCredentials
from pipeline.runtime.exceptions import AwsCallError
from pipeline.runtime.fanout import PageWriter
from pipeline.runtime.roster import MembershipChange

STREAM = "clients-test"


@pytest.fixture(scope="module")
def twin() -> Iterator[AwsServices]:
    with aws_services() as services:
        services.kinesis.create_stream(STREAM, 1)
        create_roster_table(services.client("dynamodb"))
        yield services


@pytest.fixture()
def env(twin: AwsServices) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": twin.url, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "twin", "AWS_SECRET_ACCESS_KEY": "twin"}


def _clear(ddb: Any) -> None:
    for pk, sk in all_items(ddb):
        ddb.delete_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}})


def _exercise(roster: Roster, ddb: Any) -> list[Any]:
    """Every roster operation, in order; what each answered."""
    put_meta(ddb, "A", "alice")
    put_meta(ddb, "B")
    put_meta(ddb, "C", "alice")
    answers: list[Any] = [(m.connection_id, m.principal) for m in (
        roster.join("A", "lobby"), roster.join("B", "lobby"), roster.join("C", "ops"))]
    answers.append(roster.write_memberships([MembershipChange(f"M{i:02d}", "big", True)
                                             for i in range(30)]))  # two BatchWriteItems
    answers += [roster.connection("A"), roster.connection("nobody"),
                roster.is_member("A", "lobby"), roster.is_member("A", "ops"),
                sorted(roster.members("lobby")), len(roster.members_upto("big", 7)),
                sorted(m.connection_id for m in roster.member_details("big")),
                sorted(roster.connections_of("alice")), roster.count_connections(),
                sorted(roster.all_connections())]
    roster.leave("B", "lobby")
    removed = roster.remove_connection_rooms("A")
    answers += [(removed.items, removed.rooms), sorted(roster.members("lobby")), all_items(ddb)]
    for operation in (lambda: Roster("no-such-table", client=roster._ddb).join("X", "r"),
                      lambda: list(Roster("no-such-table", client=roster._ddb).members("r"))):
        with pytest.raises(RosterError) as raised:
            operation()
        answers.append((raised.value.operation, raised.value.code))
    return answers


def test_the_roster_answers_the_same_through_either_client(
        twin: AwsServices, env: dict[str, str]) -> None:
    ddb = twin.client("dynamodb")
    _clear(ddb)
    expected = _exercise(Roster(TABLE, client=ddb), ddb)
    _clear(ddb)
    ours = dynamodb_client(env)
    assert _exercise(Roster(TABLE, client=ours), ddb) == expected
    assert expected[-1] == ("query", "ResourceNotFoundException")
    assert ours.api.pool.opened == 1  # one kept connection served every call
    ours.close()


def test_pages_over_one_megabyte_are_followed(twin: AwsServices, env: dict[str, str]) -> None:
    ddb = twin.client("dynamodb")
    _clear(ddb)
    big = "x" * 200_000
    for i in range(8):  # ~1.6 MB: a Query answers at most 1 MB a page
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "ROOM#huge"}, "sk": {"S": f"CONN#{i}"},
                                            "connectionId": {"S": str(i)}, "pad": {"S": big}})
    pages = list(dynamodb_client(env).get_paginator("query").paginate(
        TableName=TABLE, KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "ROOM#huge"}}))
    assert len(pages) > 1
    assert sorted(i["connectionId"]["S"] for p in pages for i in p["Items"]) == [
        str(i) for i in range(8)]
    _clear(ddb)


def test_page_writer_puts_what_boto3_reads_back(twin: AwsServices, env: dict[str, str]) -> None:
    kinesis = twin.client("kinesis")
    shard = kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                          ShardIteratorType="LATEST")["ShardIterator"]
    data = [bytes([i]) * 3 + b"\x00\xff" for i in range(5)]
    assert PageWriter(STREAM, client=kinesis_client(env)).put(
        [(f"k{i}", d) for i, d in enumerate(data)]) == 1
    got = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [(r["PartitionKey"], r["Data"]) for r in got] == [
        (f"k{i}", d) for i, d in enumerate(data)]


def test_a_stream_write_error_carries_the_aws_code(env: dict[str, str]) -> None:
    with pytest.raises(AwsCallError) as raised:
        kinesis_client(env).put_records(StreamName="no-such-stream",
                                        Records=[{"Data": b"x", "PartitionKey": "k"}])
    assert (raised.value.code, raised.value.status) == ("ResourceNotFoundException", 400)


# --- retries, as boto3's standard mode ---------------------------------------------------------

class _Scripted(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: ClassVar[list[tuple[int, str]]] = []
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(f"{self.headers['X-Amz-Target']} {self.headers['Content-Type']} "
                         f"{json.loads(body)}")
        status, code = self.script.pop(0) if self.script else (200, "")
        payload = json.dumps({"__type": code, "message": "scripted"} if code else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", JSON_10)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"script": [], "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _client(url: str, sleeps: list[float]) -> DynamoDbApi:
    return DynamoDbApi(JsonApi(url, service="dynamodb", target_prefix="DynamoDB_20120810",
                               region="us-east-1", content_type=JSON_10, pooled=4, attempts=3,
                               credentials=lambda: FrozenCredentials("a", "b", None),
                               sleep=sleeps.append))


def test_throttling_and_5xx_are_retried_with_backoff(
        scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    handler.script[:] = [(400, "ProvisionedThroughputExceededException"), (503, "")]
    sleeps: list[float] = []
    assert _client(url, sleeps).get_item(TableName="t", Key={}) == {}
    assert len(handler.seen) == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1 and 0 <= sleeps[1] <= 2  # random() * 2**(attempt - 1)
    assert handler.seen[0].startswith(f"DynamoDB_20120810.GetItem {JSON_10} ")


def test_three_attempts_at_most_and_client_errors_at_once(
        scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    handler.script[:] = [(400, "ThrottlingException")] * 5
    sleeps: list[float] = []
    with pytest.raises(AwsCallError) as raised:
        _client(url, sleeps).query(TableName="t")
    assert raised.value.code == "ThrottlingException" and len(handler.seen) == 3
    handler.script[:] = [(400, "ValidationException")]
    handler.seen.clear()
    with pytest.raises(AwsCallError) as raised:
        _client(url, sleeps).query(TableName="t")
    assert raised.value.code == "ValidationException" and len(handler.seen) == 1


def test_what_is_retryable() -> None:
    assert retryable(AwsCallError("Q", "ConnectionRefusedError", 0))
    assert retryable(AwsCallError("Q", "InternalServerError", 500))
    assert retryable(AwsCallError("Q", "ProvisionedThroughputExceededException", 400))
    assert not retryable(AwsCallError("Q", "NoCredentialsError", 0))
    assert not retryable(AwsCallError("Q", "ConditionalCheckFailedException", 400))


def test_the_roster_and_the_page_writer_do_not_import_boto3(env: dict[str, str]) -> None:
    """A container's first roster call or stream write does not load boto3 (~0.4 s of CPU)."""
    import subprocess

    code = (f"import sys, os; os.environ.update({env!r}); "
            "from pipeline.runtime.roster import Roster; from pipeline.runtime.fanout import "
            "PageWriter; Roster('t'); PageWriter('s'); "
            "print('boto3' in sys.modules, 'botocore.client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out == ["False", "False"]


def test_data_is_base64_on_the_wire(scripted: tuple[str, type[_Scripted]]) -> None:
    url, handler = scripted
    from pipeline.runtime.aws_json import KinesisApi

    api = KinesisApi(JsonApi(url, service="kinesis", target_prefix="Kinesis_20131202",
                             region="us-east-1",
                             credentials=lambda: FrozenCredentials("a", "b", None)))
    api.put_records(StreamName="s", Records=[{"Data": b"\x00\x01", "PartitionKey": "k"}])
    sent = handler.seen[0]
    assert base64.b64encode(b"\x00\x01").decode() in sent and "Kinesis_20131202.PutRecords" in sent


def test_boto3_is_still_accepted_as_an_injected_client(twin: AwsServices) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=twin.url, region_name="us-east-1",
                       aws_access_key_id="t", aws_secret_access_key="t")
    with pytest.raises(RosterError) as raised:
        Roster("no-such-table", client=ddb).join("X", "r")
    assert raised.value.code == "ResourceNotFoundException"
