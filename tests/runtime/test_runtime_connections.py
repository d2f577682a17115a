"""The @connections client against a real local HTTP server that answers like AWS."""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from runtime_kit.connections_stub import AtConnections
from runtime_kit.retry import FAST_RETRY
from websockets.sync.client import connect

from pipeline import DEFAULT_REGION
from pipeline.local.harness import TwinProcess
from pipeline.runtime import ConnectionsClient, Outcome, RetryPolicy
from pipeline.runtime.signed_http import (
    Connection,
    SignedPoster,
    SigV4Signer,
    ca_bundle,
    error_code,
    host_header,
    region_of,
    request_bytes,
)


def test_a_post_is_delivered_with_its_exact_bytes(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    result = connections.post("abc=", b'{"x":1}')
    assert (result.outcome, result.attempts, result.status) == (Outcome.DELIVERED, 1, 200)
    assert atconn.posts == [("abc=", b'{"x":1}')]


def test_410_is_gone_at_once(atconn: AtConnections, connections: ConnectionsClient) -> None:
    atconn.gone.add("old")
    result = connections.post("old", b"{}")
    assert (result.outcome, result.status, result.error_code) == (Outcome.GONE, 410,
                                                                  "GoneException")
    assert atconn.attempts["old"] == 1


def test_429_is_retried_then_delivered(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    atconn.throttle["busy"] = 2
    result = connections.post("busy", b"{}")
    assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 3)
    assert atconn.attempts["busy"] == 3 and atconn.delivered_to() == ["busy"]


def test_throttling_and_5xx_give_up_after_the_bounded_attempts(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    atconn.throttle["busy"] = 100
    atconn.broken.add("down")
    busy, down = connections.post("busy", b"{}"), connections.post("down", b"{}")
    assert (busy.outcome, busy.status, busy.error_code) == (Outcome.FAILED, 429,
                                                            "LimitExceededException")
    assert (down.outcome, down.status) == (Outcome.FAILED, 500)
    # exactly max_attempts each: botocore's own retries are off, so nothing retries twice
    assert atconn.attempts["busy"] == atconn.attempts["down"] == connections.retry.max_attempts


def test_413_is_reported_not_retried(atconn: AtConnections, connections: ConnectionsClient) -> None:
    result = connections.post("x", b"a" * (128 * 1024 + 1))
    assert (result.outcome, result.status, result.attempts) == (Outcome.TOO_LARGE, 413, 1)
    assert result.error_code == "PayloadTooLargeException"


def test_post_many_is_concurrent_deduplicated_and_reports_each_connection(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    atconn.delay_s = 0.02
    atconn.gone.add("c3")
    ids = [f"c{i}" for i in range(40)] + ["c1", "c2"]
    results = connections.post_many(ids, json.dumps({"m": 1}).encode())
    assert [r.connection_id for r in results] == [f"c{i}" for i in range(40)]
    assert [r.connection_id for r in results if r.outcome is Outcome.GONE] == ["c3"]
    assert sorted(atconn.delivered_to()) == sorted(f"c{i}" for i in range(40) if i != 3)
    assert atconn.max_in_flight > 4  # not a sequential loop


def test_unreachable_endpoint_fails_after_bounded_attempts(aws_env: None) -> None:
    client = ConnectionsClient("http://127.0.0.1:9/dev", retry=RetryPolicy(2, 0.001, 0.001))
    result = client.post("x", b"{}")
    assert (result.outcome, result.attempts, result.status) == (Outcome.FAILED, 2, 0)


def test_full_jitter_backoff_stays_under_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=0.05, cap_s=0.4)
    delays = [policy.delay(n) for n in range(10) for _ in range(50)]
    assert all(0.0 <= d <= 0.4 for d in delays)
    assert max(policy.delay(0) for _ in range(200)) <= 0.05


@pytest.mark.parametrize(("setup", "expected"), [
    ("gone", (Outcome.GONE, 410, "GoneException", 1)),
    ("too_large", (Outcome.TOO_LARGE, 413, "PayloadTooLargeException", 1)),
    ("forbidden", (Outcome.FAILED, 403, "ForbiddenException", 1)),
    ("throttle", (Outcome.DELIVERED, 200, "", 2)),
    ("flaky", (Outcome.DELIVERED, 200, "", 2)),
])
def test_each_answer_maps_to_its_outcome(
    atconn: AtConnections, connections: ConnectionsClient, setup: str,
    expected: tuple[Outcome, int, str, int],
) -> None:
    cid = "Ab1+/x="  # needs percent-encoding in the path, and is signed that way
    if setup in ("throttle", "flaky"):
        getattr(atconn, setup)[cid] = 1  # one 429 / 500, then 200
    else:
        getattr(atconn, setup).add(cid)
    result = connections.post(cid, b'{"n":1}')
    assert (result.outcome, result.status, result.error_code, result.attempts) == expected
    assert atconn.attempts[cid] == expected[3]
    assert atconn.delivered_to() == ([cid] if expected[0] is Outcome.DELIVERED else [])


def test_post_many_concurrency_is_bounded_by_workers(atconn: AtConnections) -> None:
    atconn.delay_s = 0.01
    client = ConnectionsClient(atconn.url, retry=FAST_RETRY, workers=4)
    try:
        results = client.post_many([f"c{i}" for i in range(32)], b"{}")
    finally:
        client.close()
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 32
    assert 1 < atconn.max_in_flight <= 4


def test_keep_alive_connections_are_reused(atconn: AtConnections) -> None:
    client = ConnectionsClient(atconn.url, retry=FAST_RETRY, workers=6)
    try:
        for round_ in range(3):
            results = client.post_many([f"r{round_}c{i}" for i in range(100)], b"{}")
            assert all(r.outcome is Outcome.DELIVERED for r in results)
        assert client.post("single", b"{}").outcome is Outcome.DELIVERED
    finally:
        client.close()
    assert len(atconn.posts) == 301
    assert atconn.tcp_connections <= 6  # 301 posts, at most one TCP connection per worker


def test_a_keep_alive_connection_closed_by_the_server_is_replaced_without_a_retry(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    assert connections.post("first", b"{}").outcome is Outcome.DELIVERED
    atconn.drop_connections()  # the endpoint's idle timeout closed the pooled connection
    result = connections.post("second", b"{}")
    assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 1)
    assert atconn.delivered_to() == ["first", "second"] and atconn.tcp_connections == 2


def test_an_endpoint_that_never_answers_times_out_with_timeout_error() -> None:
    """Each send and recv is bounded (by the kernel on Linux): an accepted connection that
    never answers raises ``TimeoutError``, as a Python socket timeout does, so the post fails
    with the code ``TimeoutError`` (a retryable no-answer), whatever bounds the wait."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        conn = Connection("127.0.0.1", port, None, timeouts=(2.0, 0.2))
        try:
            with pytest.raises(TimeoutError):
                conn.exchange(b"POST /prod/@connections/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        finally:
            conn.close()
        poster = SignedPoster(f"http://127.0.0.1:{port}/prod", region="us-east-1",
                              credentials=lambda: Credentials("AKID", "SECRET"))
        poster.pool.timeouts = (2.0, 0.2)
        try:
            assert poster.post_once("abc=", b"{}") == (0, "TimeoutError")
        finally:
            poster.close()


def test_a_tls_endpoint_that_never_answers_times_out_too(tmp_path: Path) -> None:
    """Over TLS the socket keeps Python's timeout (a blocking ``SSLSocket`` would retry a
    timed-out read for ever): the same ``TimeoutError``, after the read timeout."""
    import socket
    import ssl
    import threading

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    accepted: list[ssl.SSLSocket] = []

    with socket.create_server(("127.0.0.1", 0)) as server:
        def handshake_then_silence() -> None:
            sock, _ = server.accept()
            accepted.append(server_ctx.wrap_socket(sock, server_side=True))

        thread = threading.Thread(target=handshake_then_silence, daemon=True)
        thread.start()
        conn = Connection("localhost", server.getsockname()[1], client_ctx, timeouts=(5.0, 0.2))
        try:
            with pytest.raises(TimeoutError):
                conn.exchange(b"POST /prod/@connections/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        finally:
            conn.close()
            thread.join(5)
            for sock in accepted:
                sock.close()


def test_posts_over_tls_reuse_their_connection_and_reconnect_when_it_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The https path: answers read off an ``SSLSocket`` (one whole, one in pieces), the
    connection kept for the next post, a new one made once the server has closed it."""
    import socket
    import ssl
    import threading

    import pipeline.runtime.signed_http as signed_http

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    monkeypatch.setattr(signed_http, "_tls_context",
                        lambda: ssl.create_default_context(cafile=str(cert)))
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
    gone = (b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException\r\nContent-Length: 2"
            b"\r\n\r\n{}")
    seen: list[bytes] = []

    def serve(server: socket.socket) -> None:
        for answers in ([ok, gone], [ok]):  # two posts on the first connection, then one
            sock = server_ctx.wrap_socket(server.accept()[0], server_side=True)
            with sock:
                for answer in answers:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += sock.recv(65536)
                    seen.append(request.split(b"\r\n", 1)[0])
                    for i in range(0, len(answer), 7 if answer is gone else len(answer)):
                        sock.sendall(answer[i:i + 7 if answer is gone else len(answer)])

    with socket.create_server(("127.0.0.1", 0)) as server:
        thread = threading.Thread(target=serve, args=(server,), daemon=True)
        thread.start()
        poster = SignedPoster(f"https://localhost:{server.getsockname()[1]}/prod",
                              region="us-east-1",
                              credentials=lambda: Credentials("AKID", "SECRET"))
        try:
            assert poster.post_once("a", b"{}") == (200, "")
            assert poster.post_once("b", b"{}") == (410, "GoneException")
            time.sleep(0.2)  # the server has closed the first connection
            assert poster.post_once("c", b"{}") == (200, "")
        finally:
            poster.close()
            thread.join(5)
    assert seen == [b"POST /prod/@connections/%s HTTP/1.1" % c for c in (b"a", b"b", b"c")]
    assert poster.pool.opened == 2


def _self_signed(where: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_an_empty_connection_id_fails_at_once_without_a_request(
    atconn: AtConnections, connections: ConnectionsClient
) -> None:
    result = connections.post("", b"{}")
    assert (result.outcome, result.status, result.attempts) == (Outcome.FAILED, 400, 1)
    assert sum(atconn.attempts.values()) == 0


def test_error_codes_are_read_like_botocore_reads_them() -> None:
    assert error_code(410, "GoneException:http://internal.amazon.com/coral/", b"") == \
        "GoneException"
    assert error_code(400, None, b'{"__type": "com.amazon#BadRequestException"}') == \
        "BadRequestException"
    assert error_code(400, None, b'{"message": "no code"}') == "400"
    assert error_code(502, None, b"<html>bad gateway</html>") == "502"


def test_region_comes_from_the_endpoint_host_else_the_caller_the_environment_the_default(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = "https://abc123.execute-api.eu-west-3.amazonaws.com/prod"
    assert region_of(aws, "ap-south-1") == "eu-west-3"
    local = "http://127.0.0.1:8080/dev"
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    assert region_of(local, "ap-south-1") == "ap-south-1"
    assert region_of(local) == "eu-north-1"
    monkeypatch.delenv("AWS_REGION")
    assert region_of(local) == "sa-east-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert region_of(local) == DEFAULT_REGION == "us-east-1"  # docs/twin.md's and the twin's


# --- the signer is botocore's SigV4 for the same request and time ----------------------------

FROZEN = datetime.datetime(2024, 5, 17, 13, 45, 30, tzinfo=datetime.UTC)


def _botocore_headers(
    monkeypatch: pytest.MonkeyPatch, creds: Credentials, url: str, body: bytes, region: str
) -> dict[str, str]:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    request = AWSRequest("POST", url, data=body)
    botocore.auth.SigV4Auth(creds, "execute-api", region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//session+token=="])
@pytest.mark.parametrize("endpoint", ["https://abc123.execute-api.eu-west-3.amazonaws.com/prod",
                                      "http://127.0.0.1:8080/dev"])
def test_the_signature_is_the_one_botocore_computes(
    monkeypatch: pytest.MonkeyPatch, token: str | None, endpoint: str
) -> None:
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    region = region_of(endpoint)
    poster = SignedPoster(endpoint, region=region, credentials=lambda: creds,
                          clock=FROZEN.timestamp)
    cid, body = "L0SM9cOFvHcCIhw=", b'{"action":"message","text":"h\xc3\xa9"}'
    path = urlsplit(endpoint).path + "/@connections/" + quote(cid, safe="-._~")
    ours = poster.signer.sign(host_header(*_host_parts(endpoint)), path, body)
    theirs = _botocore_headers(monkeypatch, creds, endpoint + "/@connections/"
                               + quote(cid, safe="-._~"), body, region)
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"] == "20240517T134530Z"
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token") == token
    # the poster's own request (its per-second plan, not ``sign``) carries the same signature
    sent = _headers_of(poster.request(cid, body))
    assert sent["Authorization"] == theirs["Authorization"]
    assert sent["X-Amz-Date"] == theirs["X-Amz-Date"]
    assert sent.get("X-Amz-Security-Token") == token


def _headers_of(request: bytes) -> dict[str, str]:
    head = request.split(b"\r\n\r\n", 1)[0].decode()
    return dict(line.split(": ", 1) for line in head.split("\r\n")[1:])


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//session+token=="])
@pytest.mark.parametrize("cid", ["L0SM9cOFvHcCIhw=", "Ab1+/x=", "a b~c%d", "é"])
@pytest.mark.parametrize("body", [b"", b'{"action":"message","text":"h\xc3\xa9"}',
                                  bytes(range(256)) * 600])
def test_the_poster_s_request_is_request_bytes_of_sign_s_headers(
    token: str | None, cid: str, body: bytes
) -> None:
    """Byte for byte what ``request_bytes(path, signer.sign(...), body)`` makes, in each second
    (the per-second plan is rebuilt when the clock moves on, and for new credentials)."""
    now = [FROZEN.timestamp()]
    creds = [Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)]
    endpoint = "https://abc123.execute-api.eu-west-3.amazonaws.com/prod"
    poster = SignedPoster(endpoint, region="eu-west-3", credentials=lambda: creds[0],
                          clock=lambda: now[0])
    path = "/prod/@connections/" + quote(cid, safe="-._~")
    for step in range(3):
        expected = request_bytes(path, poster.signer.sign(poster._host, path, body), body)
        assert poster.request(cid, body) == expected
        now[0] += 86_400 if step == 1 else 1.5  # the next second, then the next day
        creds[0] = Credentials(f"AKID{step}", f"secret{step}", token and f"{token}{step}")


def test_a_poster_without_credentials_answers_no_credentials_until_there_are_some(
    atconn: AtConnections,
) -> None:
    now = [FROZEN.timestamp()]
    creds: list[Credentials | None] = [None]
    poster = SignedPoster(atconn.url, region="us-east-1", credentials=lambda: creds[0],
                          clock=lambda: now[0])
    try:
        assert poster.post_once("x", b"{}") == (0, "NoCredentialsError")
        creds[0] = Credentials("AKID", "SECRET")
        assert poster.post_once("x", b"{}") == (0, "NoCredentialsError")  # cached this second
        now[0] += 1
        assert poster.post_once("x", b"{}") == (200, "")
    finally:
        poster.close()
    assert atconn.posts == [("x", b"{}")]


def test_https_verifies_with_botocore_s_ca_bundle_without_loading_its_http_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import botocore.httpsession

    assert ca_bundle() == botocore.httpsession.get_cert_path(True)
    monkeypatch.setitem(sys.modules, "certifi", None)  # as where certifi is not installed
    assert ca_bundle() == botocore.httpsession.DEFAULT_CA_BUNDLE
    assert Path(botocore.httpsession.DEFAULT_CA_BUNDLE).is_file()


def _host_parts(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def test_refreshed_credentials_are_used_from_the_next_second() -> None:
    now = [FROZEN.timestamp()]
    current = [Credentials("AKIDOLD", "old-secret")]

    class Source:
        def get_frozen_credentials(self) -> ReadOnlyCredentials:
            return current[0].get_frozen_credentials()

    signer = SigV4Signer(Source, "us-east-1", clock=lambda: now[0])
    first = signer.sign("h", "/dev/@connections/x", b"")["Authorization"]
    current[0] = Credentials("AKIDNEW", "new-secret", "tok")
    assert signer.sign("h", "/dev/@connections/x", b"")["Authorization"] == first  # cached
    now[0] += 1
    renewed = signer.sign("h", "/dev/@connections/x", b"")
    assert "Credential=AKIDNEW/20240517/us-east-1/execute-api/aws4_request" in \
        renewed["Authorization"]
    assert renewed["X-Amz-Security-Token"] == "tok"


def test_without_credentials_a_post_fails_after_its_attempts(
    atconn: AtConnections, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ConnectionsClient(atconn.url, retry=RetryPolicy(2, 0.001, 0.001),
                               credentials=lambda: None)
    result = client.post("x", b"{}")
    assert (result.outcome, result.status, result.error_code, result.attempts) == (
        Outcome.FAILED, 0, "NoCredentialsError", 2)
    assert sum(atconn.attempts.values()) == 0


# --- the twin's real @connections endpoint ----------------------------------------------------

def test_the_lean_path_delivers_to_live_twin_connections_and_prunes_unknown_ones(
    twin: TwinProcess, aws_env: None
) -> None:
    ddb = boto3.client("dynamodb", endpoint_url=twin.aws)
    table = ddb.list_tables()["TableNames"][0]
    since_ms = int(time.time() * 1000) - 1
    with connect(twin.ws) as one, connect(twin.ws) as two:
        metas = ddb.scan(TableName=table, FilterExpression="sk = :m AND connectedAt >= :t",
                         ExpressionAttributeValues={":m": {"S": "META"},
                                                    ":t": {"N": str(since_ms)}})["Items"]
        live = [m["connectionId"]["S"] for m in metas]  # ours: other tests share the twin
        assert len(live) == 2  # the $connect integration wrote both before the handshake ended
        client = ConnectionsClient(twin.connections.removesuffix("/@connections"))
        try:
            results = client.post_many([*live, "AAAAAAAAAAAAAAA="], b'{"hello":"twin"}')
            too_big = client.post(live[0], b"x" * (128 * 1024 + 1))
        finally:
            client.close()
        by_id = {r.connection_id: r for r in results}
        assert all(by_id[cid].outcome is Outcome.DELIVERED for cid in live)
        assert (by_id["AAAAAAAAAAAAAAA="].outcome, by_id["AAAAAAAAAAAAAAA="].status) == (
            Outcome.GONE, 410)
        assert (too_big.outcome, too_big.error_code) == (Outcome.TOO_LARGE,
                                                         "PayloadTooLargeException")
        assert one.recv(timeout=5) == two.recv(timeout=5) == '{"hello":"twin"}'


def test_posts_stop_retrying_at_the_deadline_they_are_given(atconn: AtConnections) -> None:
    """A degraded endpoint must fail the post before the Lambda times out (which would replay
    the whole batch and lose the partial batch response), not retry past the deadline."""
    atconn.broken.add("slow")
    patient = ConnectionsClient(atconn.url, retry=RetryPolicy(max_attempts=50, base_s=1.0,
                                                             cap_s=1.0), workers=2)
    try:
        started = time.monotonic()
        result = patient.post("slow", b"{}", deadline=time.monotonic() + 0.5)
        assert result.outcome is Outcome.FAILED
        assert time.monotonic() - started < 3.0  # not ~50 attempts x U(0, 1 s)
        assert 1 <= atconn.attempts["slow"] < 50  # stopped early (full jitter: a few tries)
        late = patient.post("late", b"{}", deadline=time.monotonic() - 1)  # already past
        assert (late.outcome, late.error_code, late.attempts) == (
            Outcome.FAILED, "DeadlineExceeded", 0)
        assert atconn.attempts["late"] == 0
        many = patient.post_many(["m1", "m2"], b"{}", deadline=time.monotonic() - 1)
        assert [r.error_code for r in many] == ["DeadlineExceeded"] * 2
        assert atconn.attempts["m1"] == atconn.attempts["m2"] == 0
        # without a deadline nothing else bounds the retries but the policy
        atconn.flaky["no-deadline"] = 3
        assert patient.post("no-deadline", b"{}").outcome is Outcome.DELIVERED
    finally:
        patient.close()


def test_the_invocation_deadline_is_the_remaining_time_less_a_margin() -> None:
    from pipeline.runtime.invocation import invocation_deadline

    class Context:
        def __init__(self, ms: int) -> None:
            self.ms = ms

        def get_remaining_time_in_millis(self) -> int:
            return self.ms

    now = time.monotonic()
    deadline = invocation_deadline(Context(30_000))
    assert deadline is not None and now + 26.5 < deadline < now + 27.5  # 10 % margin
    short = invocation_deadline(Context(5_000))
    assert short is not None and now + 3.5 < short < now + 4.5  # at least 1 s margin
    assert invocation_deadline(None) is None


# --- the keep-alive pool ------------------------------------------------------------------------

class _FakeConnection:
    def __init__(self) -> None:
        self.idle_since = 0.0
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_the_pool_reuses_the_last_connection_keeps_at_most_maxsize_and_drops_stale_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pipeline.runtime.signed_http as signed_http

    pool = signed_http.ConnectionPool("http", "127.0.0.1", 9, maxsize=2)
    conns = [_FakeConnection() for _ in range(3)]
    for conn in conns:
        pool.put(conn)  # type: ignore[arg-type]
    assert conns[2].closed and not conns[0].closed and not conns[1].closed  # over maxsize
    assert pool.take() is conns[1] and pool.take() is conns[0]  # LIFO
    assert pool.take() is None and pool.take() is None
    pool.put(conns[0])  # type: ignore[arg-type]
    pool.put(conns[1])  # type: ignore[arg-type]
    monkeypatch.setattr(signed_http, "IDLE_LIMIT_S", 0.0)  # both idle too long now
    assert pool.take() is None and conns[0].closed and conns[1].closed
    monkeypatch.setattr(signed_http, "IDLE_LIMIT_S", 50.0)
    fresh = [_FakeConnection(), _FakeConnection()]
    for conn in fresh:
        pool.put(conn)  # type: ignore[arg-type]
    pool.close()
    assert all(c.closed for c in fresh) and pool.take() is None


def test_the_pool_shared_by_threads_hands_each_connection_to_one_thread_at_a_time() -> None:
    import threading

    import pipeline.runtime.signed_http as signed_http

    pool = signed_http.ConnectionPool("http", "127.0.0.1", 9, maxsize=4)
    seed = [_FakeConnection() for _ in range(4)]
    for conn in seed:
        pool.put(conn)  # type: ignore[arg-type]
    in_use: set[int] = set()
    lock = threading.Lock()
    clashes: list[int] = []

    def worker() -> None:
        for _ in range(2000):
            conn = pool.take() or _FakeConnection()
            with lock:
                if id(conn) in in_use:
                    clashes.append(id(conn))
                in_use.add(id(conn))
            with lock:
                in_use.discard(id(conn))
            pool.put(conn)  # type: ignore[arg-type]

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not clashes
    assert len(pool._idle) <= 4  # what is over maxsize was closed
    kept = pool._idle[:]
    pool.close()
    assert all(c.closed for c in kept)
