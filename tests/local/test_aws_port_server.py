"""The AWS port's server (``pipeline.local.wsgi_server`` under ``GuardedAwsServer``): keep-alive
HTTP/1.1 to boto3 and raw sockets, long polls beside the other requests, WSGI as PEP 3333 says."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline.aws.limits import KINESIS_MAX_RECORD_BYTES, REGION
from pipeline.local.errors import ServicesError
from pipeline.local.iam.wsgi import GuardedAwsServer, may_wait
from pipeline.local.kinesis.wsgi import KinesisApp
from pipeline.local.services import AwsServices
from pipeline.local.wsgi_server import WsgiServer

DEADLINE_S = 10.0
LONG_POLL_S = 2
FAKE_SIGNATURE = ("AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/dynamodb/aws4_request, "
                  "SignedHeaders=host, Signature=0")
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class Seen:
    """What the app behind the server saw: each request's client port and target."""

    calls: list[tuple[int, str]] = field(default_factory=list)
    receiving: threading.Event = field(default_factory=threading.Event)

    def wrap(self, app: WsgiApp) -> WsgiApp:
        def recording(environ: dict[str, Any], start_response: Callable[..., Any]
                      ) -> Iterable[bytes]:
            target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            self.calls.append((int(environ["REMOTE_PORT"]), target))
            if target == "AmazonSQS.ReceiveMessage":
                self.receiving.set()
            return app(environ, start_response)
        return recording

    def ports_of(self, target: str) -> set[int]:
        return {port for port, t in self.calls if t == target}


@dataclass
class Port:
    url: str
    host: str
    port: int
    seen: Seen

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture(scope="module")
def aws_port() -> Iterator[Port]:
    services = AwsServices()  # its Kinesis; moto's backends are the process's
    seen = Seen()
    server = GuardedAwsServer("127.0.0.1", 0, KinesisApp(services.kinesis_wire), wrap=seen.wrap)
    host, port = server.start()
    yield Port(f"http://{host}:{port}", host, port, seen)
    server.stop()


def _read_answer(stream: io.BufferedReader, method: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer off a socket's stream, framed by its Content-Length."""
    status = int(stream.readline().split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
    return status, headers, stream.read(length)


# --- 1. keep-alive ----------------------------------------------------------------------------

def test_boto3_calls_through_one_client_share_one_connection(aws_port: Port) -> None:
    ddb, kinesis = aws_port.client("dynamodb"), aws_port.client("kinesis")
    for _ in range(3):
        answer = ddb.list_tables()
        assert "connection" not in answer["ResponseMetadata"]["HTTPHeaders"]  # no "close"
        kinesis.list_streams()
    (ddb_port,) = aws_port.seen.ports_of("DynamoDB_20120810.ListTables")
    (kinesis_port,) = aws_port.seen.ports_of("Kinesis_20131202.ListStreams")
    assert ddb_port != kinesis_port  # a client, a pool, a connection


def test_a_raw_connection_sends_two_requests_in_a_row(aws_port: Port) -> None:
    conn = http.client.HTTPConnection(aws_port.host, aws_port.port, timeout=DEADLINE_S)
    try:
        answers = []
        for _ in range(2):
            conn.request("POST", "/", body=b"{}", headers={
                "X-Amz-Target": "Kinesis_20131202.ListStreams",
                "Content-Type": "application/x-amz-json-1.1"})
            response = conn.getresponse()
            answers.append((response.status, response.getheader("Connection"),
                            json.loads(response.read())))
            assert not response.will_close
        assert [(s, c, "StreamNames" in a) for s, c, a in answers] == [(200, None, True)] * 2
    finally:
        conn.close()


# --- 2. a long poll waits beside the other requests --------------------------------------------

def test_a_long_poll_does_not_hold_up_other_requests(aws_port: Port) -> None:
    sqs, ddb = aws_port.client("sqs"), aws_port.client("dynamodb")
    queue = sqs.create_queue(QueueName=f"long-poll-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    aws_port.seen.receiving.clear()
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        poll = pool.submit(sqs.receive_message, QueueUrl=queue, WaitTimeSeconds=LONG_POLL_S)
        assert aws_port.seen.receiving.wait(DEADLINE_S)  # the poll is in the server
        assert "TableNames" in ddb.list_tables()
        assert not poll.done()  # answered while the poll still waits
        got = poll.result(timeout=DEADLINE_S)
        waited = time.monotonic() - started
    assert "Messages" not in got
    assert waited >= LONG_POLL_S - 0.5  # it did wait: moto's long poll, not an early answer


def test_a_message_sent_during_a_long_poll_ends_it(aws_port: Port) -> None:
    sqs = aws_port.client("sqs")
    queue = sqs.create_queue(QueueName=f"wake-{uuid.uuid4().hex[:8]}",
                             Attributes={"ReceiveMessageWaitTimeSeconds": "20"})["QueueUrl"]
    aws_port.seen.receiving.clear()
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        poll = pool.submit(sqs.receive_message, QueueUrl=queue)  # the queue's 20 s wait
        assert aws_port.seen.receiving.wait(DEADLINE_S)
        sqs.send_message(QueueUrl=queue, MessageBody="wake up")
        got = poll.result(timeout=DEADLINE_S)
    assert [m["Body"] for m in got["Messages"]] == ["wake up"]
    assert time.monotonic() - started < DEADLINE_S


@pytest.mark.parametrize(("environ", "body", "waits"), [
    ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, b"{}", True),
    ({"HTTP_X_AMZ_TARGET": "AmazonSQS.SendMessage"}, b'{"MessageBody":"ReceiveMessage"}', False),
    ({"QUERY_STRING": "Action=ReceiveMessage&QueueUrl=q"}, b"", True),
    ({"CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8"},
     b"Action=ReceiveMessage&QueueUrl=q&WaitTimeSeconds=20", True),
    ({"CONTENT_TYPE": "application/x-www-form-urlencoded"},
     b"Action=SendMessage&MessageBody=ReceiveMessage", False),
    ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.ListTables"}, b"{}", False),
])
def test_what_may_wait(environ: dict[str, Any], body: bytes, waits: bool) -> None:
    assert may_wait(environ, body) is waits


# --- 3. pipelined requests -------------------------------------------------------------------

def test_pipelined_requests_on_one_socket_are_each_answered(aws_port: Port) -> None:
    kinesis = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
               b"Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}")
    head = b"HEAD /moto-api/ HTTP/1.1\r\nHost: x\r\n\r\n"
    chunked = (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"
               b"Content-Type: application/x-amz-json-1.0\r\nAuthorization: "
               + FAKE_SIGNATURE.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"1\r\n{\r\n1\r\n}\r\n0\r\n\r\n")
    with socket.create_connection((aws_port.host, aws_port.port), timeout=DEADLINE_S) as sock:
        sock.sendall(kinesis + head + chunked)  # all three before any answer
        stream = sock.makefile("rb")
        first = _read_answer(stream, "POST")
        second = _read_answer(stream, "HEAD")
        third = _read_answer(stream, "POST")
    assert first[0] == 200 and "StreamNames" in json.loads(first[2])
    assert second[0] == 200 and int(second[1]["content-length"]) > 0 and second[2] == b""
    assert third[0] == 200 and "TableNames" in json.loads(third[2])


# --- 4. error answers --------------------------------------------------------------------------

def test_error_answers_keep_aws_s_code_and_status(aws_port: Port) -> None:
    with pytest.raises(ClientError) as missing_table:
        aws_port.client("dynamodb").describe_table(TableName=f"missing-{uuid.uuid4().hex}")
    with pytest.raises(ClientError) as missing_stream:
        aws_port.client("kinesis").describe_stream(StreamName="missing")
    for raised in (missing_table, missing_stream):
        response = raised.value.response
        assert response["Error"]["Code"] == "ResourceNotFoundException"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_10_mb_put_records_reaches_the_router(aws_port: Port) -> None:
    kinesis = aws_port.client("kinesis")
    name = f"big-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    data = b"x" * (KINESIS_MAX_RECORD_BYTES - 10)
    records = [{"Data": data, "PartitionKey": str(i)} for i in range(10)]  # ~13 MB of JSON
    with pytest.raises(ClientError) as too_big:
        kinesis.put_records(StreamName=name, Records=records)
    assert too_big.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert "5 MB" in too_big.value.response["Error"]["Message"]


# --- 5. the port -------------------------------------------------------------------------------

def test_a_taken_port_raises_oserror(aws_port: Port) -> None:
    services = AwsServices()
    with pytest.raises(OSError):
        GuardedAwsServer("127.0.0.1", aws_port.port, KinesisApp(services.kinesis_wire)).start()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        with pytest.raises(OSError):
            GuardedAwsServer("127.0.0.1", taken, KinesisApp(services.kinesis_wire)).start()
        with pytest.raises(ServicesError, match=r"cannot listen on 127\.0\.0\.1"):
            services.start(taken)
    assert aws_port.client("kinesis").list_streams()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_stop_closes_the_port() -> None:
    server = WsgiServer("127.0.0.1", 0, _echo_app([]), max_body=1024)
    host, port = server.start()
    with socket.create_connection((host, port), timeout=DEADLINE_S):
        pass
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=DEADLINE_S).close()


# --- the WSGI adapter --------------------------------------------------------------------------

class _Body:
    """A response iterable that records its close() (PEP 3333)."""

    def __init__(self, chunks: list[bytes], closed: list[bool]) -> None:
        self._chunks, self._closed = chunks, closed

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        self._closed.append(True)


def _echo_app(environs: list[dict[str, Any]], closed: list[bool] | None = None) -> WsgiApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        environs.append({**environ, "body": body})
        start_response("201 Made Here", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"),
                                         ("Set-Cookie", "b=2")])
        return _Body([b"got ", body], closed if closed is not None else [])
    return app


@pytest.fixture
def echo() -> Iterator[tuple[WsgiServer, list[dict[str, Any]], list[bool], int]]:
    environs: list[dict[str, Any]] = []
    closed: list[bool] = []
    server = WsgiServer("127.0.0.1", 0, _echo_app(environs, closed), max_body=1000)
    _, port = server.start()
    yield server, environs, closed, port
    server.stop()


def test_the_environ_is_pep_3333_s_and_werkzeug_s(echo: Any) -> None:
    _, environs, closed, port = echo
    request = (b"PUT /a%20b/%C3%A9?x=%20y&z=1 HTTP/1.1\r\nHost: example.org:9\r\n"
               b"X-Multi: one\r\nX-Multi: two\r\nX_Underscore: dropped\r\n"
               b"x-amz-meta-my_key: kept\r\nContent-Type: text/plain\r\n"
               b"Content-Length: 5\r\n\r\nhello")
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
        sock.sendall(request)
        status, headers, body = _read_answer(sock.makefile("rb"), "PUT")
    assert (status, body) == (201, b"got hello")
    assert "connection" not in headers
    (env,) = environs
    assert (env["REQUEST_METHOD"], env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == (
        "PUT", "", "/a b/\xc3\xa9", "x=%20y&z=1")  # UTF-8 bytes as latin-1
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/a%20b/%C3%A9?x=%20y&z=1"
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"], env["body"]) == ("text/plain", "5",
                                                                           b"hello")
    assert env["HTTP_X_MULTI"] == "one,two"  # werkzeug's join
    assert "HTTP_X_UNDERSCORE" not in env
    assert env["HTTP_X_AMZ_META_MY_KEY"] == "kept"
    assert env["moto.preserved_header_names"] == {"HTTP_X_AMZ_META_MY_KEY": "x-amz-meta-my_key"}
    assert env["HTTP_HOST"] == "example.org:9"
    assert (env["SERVER_NAME"], env["SERVER_PORT"], env["SERVER_PROTOCOL"]) == (
        "127.0.0.1", str(port), "HTTP/1.1")
    assert env["REMOTE_ADDR"] == "127.0.0.1" and isinstance(env["REMOTE_PORT"], int)
    assert (env["wsgi.url_scheme"], env["wsgi.multithread"], env["wsgi.multiprocess"]) == (
        "http", True, False)
    assert "wsgi.input_terminated" not in env
    assert closed == [True]


def test_headers_repeat_and_chunked_bodies_are_read_whole(echo: Any) -> None:
    _, environs, _, port = echo
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)
    try:
        conn.request("POST", "/", body=iter([b"ab", b"cd"]))  # no length: chunked
        response = conn.getresponse()
        assert (response.status, response.reason, response.read()) == (201, "Made Here",
                                                                      b"got abcd")
        assert [v for k, v in response.getheaders() if k == "Set-Cookie"] == ["a=1", "b=2"]
        assert response.getheader("Content-Length") == "8"
    finally:
        conn.close()
    env = environs[-1]
    assert (env["body"], env["CONTENT_LENGTH"], env["wsgi.input_terminated"]) == (
        b"abcd", "4", True)


def test_a_body_over_the_limit_is_refused(echo: Any) -> None:
    _, environs, _, port = echo
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)
    try:
        conn.request("POST", "/", body=b"x" * 1000)  # the limit itself passes
        assert conn.getresponse().read() == b"got " + b"x" * 1000
        conn.request("POST", "/", body=b"x" * 1001)
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert len(environs) == 1


def test_an_app_that_raises_answers_500() -> None:
    def broken(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise ValueError("broken")

    server = WsgiServer("127.0.0.1", 0, broken, max_body=1024)
    _, port = server.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)
    try:
        for _ in range(2):  # and the connection stays usable
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (500, b"Internal Server Error")
    finally:
        conn.close()
        server.stop()


def test_binary_data_goes_through_byte_for_byte(aws_port: Port) -> None:
    kinesis = aws_port.client("kinesis")
    name = f"bytes-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    data = bytes(range(256)) * 4
    put = kinesis.put_record(StreamName=name, Data=data, PartitionKey="k")
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=put["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=put["SequenceNumber"])["ShardIterator"]
    (record,) = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert record["Data"] == data
