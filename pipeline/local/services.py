"""The AWS services of the twin: moto on 127.0.0.1 plus fast in-process access for the hot path.

One set of in-process moto backends serves three doors: boto3/CLI over HTTP (moto's threaded
server), the gateway's integrations (:meth:`AwsServices.call_aws`, no HTTP), and the event
source mapping engine (:class:`MotoShardSource`, notified on every put).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from typing import Any

import boto3
import orjson
from moto.backends import get_backend
from moto.core.exceptions import ServiceException
from moto.core.exceptions import _RESTError as MotoRESTError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from pipeline.local import kinesis_store
from pipeline.local.aws import ACCOUNT_ID, REGION, AwsResponse
from pipeline.local.aws import aws_error as _error
from pipeline.local.cfn import Resource, Stack
from pipeline.local.cfn_types import stream_is_on_demand, stream_shard_count
from pipeline.local.content_types import kinesis_refusal
from pipeline.local.errors import ServicesError
from pipeline.local.esm.interfaces import StoredRecord
from pipeline.local.iam.access import AccessControl
from pipeline.local.iam.integration import integration_denied
from pipeline.local.iam.wsgi import GuardedMotoServer, IamMiddleware

log = logging.getLogger(__name__)

# AWS JSON protocol target prefixes for the services the integrations may call.
_TARGETS = {
    "kinesis": ("Kinesis_20131202", "application/x-amz-json-1.1"),
    "dynamodb": ("DynamoDB_20120810", "application/x-amz-json-1.0"),
    "sqs": ("AmazonSQS", "application/x-amz-json-1.0"),
    "secretsmanager": ("secretsmanager", "application/x-amz-json-1.1"),
}


def _from_exception(exc: Exception) -> AwsResponse:
    if isinstance(exc, MotoRESTError):
        return _error(int(exc.code or 400), exc.error_type, exc.message)
    if isinstance(exc, ServiceException):
        return _error(400, str(exc.code), str(exc.message))
    raise exc


def _silence_moto_logs() -> None:
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)


class AwsServices:
    """moto backends shared by the HTTP server, the gateway and the ESM engine."""

    def __init__(self, *, enforce_limits: bool = False,
                 access: AccessControl | None = None) -> None:
        kinesis_store.install()
        kinesis_store.set_limits(enforce_limits)
        _silence_moto_logs()
        self.kinesis: Any = get_backend("kinesis")[ACCOUNT_ID][REGION]
        self.dynamodb: Any = get_backend("dynamodb")[ACCOUNT_ID][REGION]
        self.sqs: Any = get_backend("sqs")[ACCOUNT_ID][REGION]
        self._wsgi = Client(DomainDispatcherApplication(create_backend_app))
        self._server: GuardedMotoServer | None = None
        self.url = ""
        self.access = access  # IAM checks (None: off, ``--no-iam``)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, port: int) -> str:
        """Serve the backends on ``http://127.0.0.1:<port>`` (0 picks a free port)."""
        server = GuardedMotoServer("127.0.0.1", port, wrap=self._iam_wrapper())
        try:
            host, real_port = server.start()
        except OSError as exc:
            raise ServicesError(f"cannot listen on 127.0.0.1:{port}: {exc}") from exc
        self._server = server
        self.url = f"http://{host}:{real_port}"
        return self.url

    def _iam_wrapper(self) -> Any:
        access = self.access
        if access is None:
            return None
        return lambda app: IamMiddleware(app, access, access.secret_arns)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        """A boto3 client for the twin's endpoint (dummy credentials)."""
        return boto3.client(
            service, endpoint_url=self.url, region_name=REGION,
            aws_access_key_id="twin", aws_secret_access_key="twin",
        )

    # --- provisioning from the template -------------------------------------------------------
    def provision(self, stack: Stack) -> None:
        """Create the stack's streams, consumers, tables, queues and secrets."""
        kinesis, ddb = self.client("kinesis"), self.client("dynamodb")
        for res in stack.of_type("AWS::Kinesis::Stream"):
            p = res.properties
            if stream_is_on_demand(p):  # Kinesis picks the shards of an on-demand stream
                kinesis.create_stream(StreamName=res.ref,
                                      StreamModeDetails={"StreamMode": "ON_DEMAND"})
            else:
                kinesis.create_stream(StreamName=res.ref, ShardCount=stream_shard_count(p),
                                      StreamModeDetails={"StreamMode": "PROVISIONED"})
        for res in stack.of_type("AWS::Kinesis::StreamConsumer"):
            kinesis.register_stream_consumer(
                StreamARN=res.properties["StreamARN"], ConsumerName=res.properties["ConsumerName"]
            )
        tables = stack.of_type("AWS::DynamoDB::Table") + stack.of_type("AWS::DynamoDB::GlobalTable")
        for res in tables:
            self._create_table(ddb, res)
        sqs = self.client("sqs")
        for res in stack.of_type("AWS::SQS::Queue"):
            attrs = {k: str(v) for k, v in res.properties.items()
                     if k in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                              "FifoQueue", "ReceiveMessageWaitTimeSeconds")}
            sqs.create_queue(QueueName=res.attributes["QueueName"], Attributes=attrs)
        for res in stack.of_type("AWS::SecretsManager::Secret"):
            self._create_secret(res)

    def _create_secret(self, res: Resource) -> None:
        sm: Any = get_backend("secretsmanager")[ACCOUNT_ID][REGION]
        name = res.ref.split(":secret:", 1)[1].rsplit("-", 1)[0]
        p = res.properties
        value = p.get("SecretString")
        if value is None:
            value = generate_secret_string(p.get("GenerateSecretString") or {})
        sm.create_secret(name=name, secret_string=str(value), secret_binary=None,
                         description=p.get("Description"), tags=None, kms_key_id=None,
                         client_request_token=None, replica_regions=[], force_overwrite=False)
        # moto draws its own random ARN suffix; the functions were given the template's ARN.
        sm.secrets[name].arn = res.ref

    @staticmethod
    def _create_table(ddb: Any, res: Resource) -> None:
        p = res.properties
        kwargs: dict[str, Any] = {
            "TableName": res.ref,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        if "ProvisionedThroughput" in p:
            kwargs["ProvisionedThroughput"] = p["ProvisionedThroughput"]
        elif kwargs["BillingMode"] == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in p:
                kwargs[key] = p[key]
        ddb.create_table(**kwargs)
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=res.ref,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )

    # --- the gateway's integrations -------------------------------------------------------------
    def call_aws(
        self, service: str, action: str, body: bytes, credentials_arn: str | None,
        content_type: str | None = None,
    ) -> AwsResponse:
        """One AWS JSON-protocol call, in process; AWS errors come back as responses.

        ``content_type`` is the request's Content-Type header (None: the one an SDK sends);
        Kinesis refuses any type it does not read, as AWS does (``content_types.py``).

        Kinesis PutRecord/PutRecords go straight to the backend (~0.05 ms); any other action
        goes through moto's own request handling in process (~1 ms, no socket).
        With IAM on, the ``credentials_arn`` role must allow the action (pipeline.local.iam).
        """
        if self.access is not None and credentials_arn:
            denied = integration_denied(self.access, service, action, body, credentials_arn)
            if denied is not None:
                return denied
        if service == "kinesis" and content_type is not None:
            refused = kinesis_refusal(content_type)
            if refused is not None:
                return refused
        try:
            if service == "kinesis" and action in ("PutRecord", "PutRecords"):
                return self._kinesis_put(action, body)
            return self._dispatch(service, action, body)
        except Exception as exc:  # AWS errors only; anything else propagates from _from_exception
            return _from_exception(exc)

    def _kinesis_put(self, action: str, body: bytes) -> AwsResponse:
        try:
            req = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "SerializationException", "the request body is not valid JSON")
        if not isinstance(req, dict):
            return _error(400, "SerializationException", "the request body is not a JSON object")
        stream_name, stream_arn = req.get("StreamName"), req.get("StreamARN")
        if not stream_name and not stream_arn:
            return _error(400, "ValidationException", "StreamName or StreamARN is required")
        if action == "PutRecords":
            records = req.get("Records")
            if not isinstance(records, list) or not records:
                return _error(400, "ValidationException", "Records must be a non-empty list")
            result = self.kinesis.put_records(stream_arn, stream_name, records)
            return AwsResponse(200, orjson.dumps(result))
        data, key = req.get("Data"), req.get("PartitionKey")
        if not isinstance(data, str) or not isinstance(key, str):
            return _error(400, "ValidationException",
                          "Data (base64 string) and PartitionKey (string) are required")
        size = kinesis_store._data_size(data) + len(key.encode())
        if size > kinesis_store.MAX_RECORD_BYTES:
            return _error(400, "ValidationException",
                          "1 validation error detected: Value at 'data' failed to satisfy "
                          "constraint: Member must have length less than or equal to 1048576")
        seq, shard_id = self.kinesis.put_record(
            stream_arn, stream_name, key, req.get("ExplicitHashKey"), data
        )
        return AwsResponse(200, orjson.dumps({"SequenceNumber": seq, "ShardId": shard_id}))

    def _dispatch(self, service: str, action: str, body: bytes) -> AwsResponse:
        target = _TARGETS.get(service)
        if target is None:
            return _error(400, "UnknownOperationException",
                          f"the twin does not serve service {service!r}")
        prefix, content_type = target
        headers = {
            "X-Amz-Target": f"{prefix}.{action}",
            "Content-Type": content_type,
            "Host": f"{service}.{REGION}.amazonaws.com",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=twin/20240101/{REGION}/{service}/"
            "aws4_request, SignedHeaders=host, Signature=0",
        }
        resp = self._wsgi.post("/", data=body, headers=headers)
        error_type = None
        if resp.status_code >= 400:
            error_type = resp.headers.get("X-Amzn-ErrorType")
            if not error_type:
                try:
                    error_type = str(orjson.loads(resp.data).get("__type", "")).split("#")[-1]
                except (orjson.JSONDecodeError, AttributeError):
                    error_type = "InternalFailure"
            error_type = error_type.split(":")[0].split("#")[-1]
        return AwsResponse(resp.status_code, resp.data, error_type)


def generate_secret_string(spec: dict[str, Any]) -> str:
    """A value for ``GenerateSecretString`` (length, exclusions, optional JSON template).
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-secretsmanager-secret-generatesecretstring.html
    """
    import json
    import secrets
    import string

    alphabet = ""
    if not spec.get("ExcludeLowercase"):
        alphabet += string.ascii_lowercase
    if not spec.get("ExcludeUppercase"):
        alphabet += string.ascii_uppercase
    if not spec.get("ExcludeNumbers"):
        alphabet += string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    if spec.get("IncludeSpace"):
        alphabet += " "
    excluded = str(spec.get("ExcludeCharacters", ""))
    alphabet = "".join(c for c in alphabet if c not in excluded) or string.ascii_letters
    length = int(spec.get("PasswordLength", 32))
    value = "".join(secrets.choice(alphabet) for _ in range(length))
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template and key:
        doc = json.loads(str(template))
        doc[str(key)] = value
        return json.dumps(doc)
    return value


class MotoShardSource:
    """The ESM engine's read side of the stream, over the shared Kinesis backend."""

    def __init__(self, services: AwsServices, loop: asyncio.AbstractEventLoop) -> None:
        self._backend = services.kinesis
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = defaultdict(set)
        kinesis_store.add_listener(self._on_put)

    def close(self) -> None:
        kinesis_store.remove_listener(self._on_put)

    def _stream(self, stream_arn: str) -> Any:
        return self._backend.describe_stream(stream_arn=stream_arn, stream_name=None)

    def stream_arn_of(self, event_source_arn: str) -> str:
        return event_source_arn.split("/consumer/", 1)[0]

    def shard_ids(self, stream_arn: str) -> list[str]:
        return [s.shard_id for s in self._stream(stream_arn).shards.values() if s.is_open]

    def read(
        self, stream_arn: str, shard_id: str, *, after_sequence: str | None,
        at_timestamp: float | None, limit: int,
    ) -> list[StoredRecord]:
        shard = self._stream(stream_arn).get_shard(shard_id)
        if after_sequence is not None:
            after = int(after_sequence)
        elif at_timestamp is not None:
            after = shard.get_sequence_number_at(at_timestamp)
        else:
            after = 0
        return [_stored(r) for r in kinesis_store.records_after(shard, after, limit)]

    def latest_sequence(self, stream_arn: str, shard_id: str) -> str | None:
        last = kinesis_store.last_sequence(self._stream(stream_arn).get_shard(shard_id))
        return str(last) if last else None

    async def wait_for_records(
        self, stream_arn: str, shard_id: str, after_sequence: str | None, timeout_s: float
    ) -> None:
        shard = self._stream(stream_arn).get_shard(shard_id)
        after = int(after_sequence) if after_sequence is not None else 0
        if kinesis_store.last_sequence(shard) > after:
            return
        key = (stream_arn.rsplit("/", 1)[-1], shard_id)
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiters[key].add(future)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            pass
        finally:
            self._waiters[key].discard(future)

    def _on_put(self, stream_name: str, shard_id: str) -> None:
        if threading.get_ident() == self._loop_thread:
            self._wake(stream_name, shard_id)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake, stream_name, shard_id)

    def _wake(self, stream_name: str, shard_id: str) -> None:
        for future in self._waiters.get((stream_name, shard_id), ()):
            if not future.done():
                future.set_result(None)


def _stored(record: Any) -> StoredRecord:
    import base64

    return StoredRecord(
        sequence_number=str(record.sequence_number),
        partition_key=record.partition_key,
        data=base64.b64decode(record.data),
        approximate_arrival_timestamp=float(record.created_at),
        explicit_hash_key=record.explicit_hash_key or None,
    )


class SqsFailureSink:
    """The ESM on-failure destination: SQS SendMessage on the shared backend."""

    def __init__(self, services: AwsServices) -> None:
        self._sqs = services.sqs

    def send(self, destination_arn: str, message: dict[str, Any]) -> None:
        queue_name = destination_arn.rsplit(":", 1)[-1]
        self._sqs.send_message(queue_name, orjson.dumps(message).decode())
