"""A container's first batch does not import boto3 (the runtime's own calls need none of it).

A fresh interpreter, with what Lambda puts in a consumer's environment (the role's keys, the
Region) and the stack's variables (@connections endpoint, stream name and shard count), imports
the echo handler and runs one batch: the reply is posted (the @connections stub), the open shard
count is read (DescribeStreamSummary, the twin's Kinesis over HTTP), and neither loads boto3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from runtime_kit.connections_stub import AtConnections
from runtime_kit.kinesis_events import A, load
from stacks import aws_services

from pipeline import PROJECT_ROOT
from pipeline.local.services import AwsServices

STREAM = "cold-stream"

# Run in the child: what a Lambda container does on its first invocation, and what it loaded.
PROBE = """
import json, sys
event = json.loads(sys.stdin.read())
aws = lambda: sorted(m for m in sys.modules if m.split(".")[0] in
                     ("boto3", "botocore", "s3transfer", "urllib3"))
import consumers.echo.handler as handler
imported = aws()
answer = handler.lambda_handler(event, None)
from pipeline.runtime.container import container
count = container().shard_counts[sys.argv[1]]
print(json.dumps({"answer": answer, "imported": imported, "batch": aws(),
                  "open_shards": count.current(), "readings": count.readings}))
"""


@pytest.fixture(scope="module")
def twin_aws() -> Iterator[AwsServices]:
    with aws_services() as services:
        services.kinesis.create_stream(STREAM, 3)
        yield services


def _first_batch(env: dict[str, str]) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, STREAM], input=json.dumps(load("kinesis_echo")),
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT, check=False,
        env={**base, "PYTHONPATH": str(PROJECT_ROOT), **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _lambda_env(atconn: AtConnections, twin_aws: AwsServices) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_SESSION_TOKEN": "token", "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": twin_aws.url,
            "CONNECTIONS_ENDPOINT_URL": atconn.url, "STREAM_NAME": STREAM, "STREAM_SHARDS": "1",
            "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_NAMESPACE": "test"}


def test_the_first_batch_imports_no_boto3(atconn: AtConnections, twin_aws: AwsServices) -> None:
    seen = _first_batch(_lambda_env(atconn, twin_aws))
    assert seen["answer"] == {"batchItemFailures": []}
    assert atconn.received(A)[0]["action"] == "echo"  # posted, signed with the env keys
    assert (seen["open_shards"], seen["readings"]) == (3, 1)  # read from the twin's Kinesis
    assert "boto3" not in seen["batch"]
    # neither the import nor the batch loads any module of boto3, botocore or urllib3
    assert seen["imported"] == seen["batch"] == []


def test_without_env_keys_the_first_batch_falls_back_to_boto3_s_chain(
    atconn: AtConnections, twin_aws: AwsServices, tmp_path: Any
) -> None:
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n")
    env = {k: v for k, v in _lambda_env(atconn, twin_aws).items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
            "AWS_CONFIG_FILE": str(tmp_path / "config"), "AWS_EC2_METADATA_DISABLED": "true"}
    seen = _first_batch(env)
    assert seen["answer"] == {"batchItemFailures": []}
    assert atconn.received(A)[0]["action"] == "echo"
    assert (seen["open_shards"], seen["readings"]) == (3, 1)
    assert "boto3" in seen["batch"]  # the chain, as before
