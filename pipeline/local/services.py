"""The twin's AWS services on 127.0.0.1: its own Kinesis and moto's other backends, three doors.

- boto3/CLI/SDKs over HTTP: one keep-alive HTTP/1.1 server (:mod:`pipeline.local.wsgi_server`,
  in a thread of its own), Kinesis requests (JSON or CBOR) to the twin's
  :mod:`pipeline.local.kinesis`, the rest to moto (DynamoDB, SQS, Secrets Manager, unpatched),
  all behind the IAM middleware (:meth:`start`);
- the gateway's integrations: :class:`~pipeline.local.aws_door.AwsDoor` (``call_aws``, no HTTP);
- the event source mappings: :class:`~pipeline.local.shard_source.KinesisShardSource`, reading
  this object's :class:`~pipeline.local.kinesis.KinesisBackend` and woken on every put.

Each instance owns its Kinesis backend (two never share streams, limits or listeners); moto's
backends are process-wide.

Provisioning the template's resources is ``pipeline.local.provision``.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
from moto.backends import get_backend

from pipeline.aws.errors import AwsResponse
from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.aws_door import AwsDoor
from pipeline.local.cfn import Stack
from pipeline.local.errors import ServicesError
from pipeline.local.iam.access import AccessControl
from pipeline.local.iam.wsgi import GuardedAwsServer, IamMiddleware
from pipeline.local.kinesis import KinesisBackend, KinesisResponses
from pipeline.local.kinesis.wsgi import KinesisApp

log = logging.getLogger(__name__)


def _silence_moto_logs() -> None:
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)


class AwsServices:
    """The services shared by the HTTP server, the gateway and the ESM engine."""

    def __init__(self, *, enforce_limits: bool = False,
                 access: AccessControl | None = None, consumer_activation_s: float = 0.0) -> None:
        _silence_moto_logs()
        self.kinesis = KinesisBackend(REGION, ACCOUNT_ID, enforce_limits=enforce_limits,
                                      consumer_activation_s=consumer_activation_s)
        self.kinesis_wire = KinesisResponses(self.kinesis)
        self.dynamodb: Any = get_backend("dynamodb")[ACCOUNT_ID][REGION]
        self.sqs: Any = get_backend("sqs")[ACCOUNT_ID][REGION]
        self.door = AwsDoor(self.kinesis_wire, access)
        self._server: GuardedAwsServer | None = None
        self.url = ""

    @property
    def access(self) -> AccessControl | None:
        """The IAM checks of every door (None: off, ``--no-iam``); settable, e.g. by tests."""
        return self.door.access

    @access.setter
    def access(self, access: AccessControl | None) -> None:
        self.door.access = access

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, port: int) -> str:
        """Serve the services on ``http://127.0.0.1:<port>`` (0 picks a free port)."""
        server = GuardedAwsServer("127.0.0.1", port, KinesisApp(self.kinesis_wire),
                                   wrap=self._iam_wrapper())
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

    def provision(self, stack: Stack) -> None:
        """Create the stack's streams, consumers, tables, queues and secrets."""
        from pipeline.local.provision import provision

        provision(self, stack)

    def call_aws(
        self, service: str, action: str, body: bytes, credentials_arn: str | None,
        content_type: str | None = None,
    ) -> AwsResponse:
        """One AWS JSON-protocol call, in process (:meth:`AwsDoor.call_aws`)."""
        return self.door.call_aws(service, action, body, credentials_arn, content_type)
