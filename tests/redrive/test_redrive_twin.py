"""``python -m pipeline redrive`` on the twin: a record that fails until its cause is fixed lands
in the on-failure queue; ``--dry-run`` changes nothing; after the fix, ``redrive`` delivers it
once and empties the queue.

The cause: the echo consumer keeps its idempotency records (frames with an ``id``) in the roster
table; with the table deleted, the record fails every retry, the mapping bisects down to it and
sends its range to the on-failure queue. Recreating the table is the fix.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets

from pipeline.aws.limits import REGION
from pipeline.local.harness import PROJECT_ROOT, TwinProcess, start_twin, stop_twin
from pipeline.local.redrive_target import from_twin
from tests.polling import until

pytestmark = [pytest.mark.twin, pytest.mark.synth]
TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def own_twin(cloud_assembly: Path) -> Iterator[TwinProcess]:
    running = start_twin(cloud_assembly)  # its own: this test deletes the roster table
    yield running
    stop_twin(running)


def _client(twin: TwinProcess, service: str) -> Any:
    return boto3.client(service, endpoint_url=twin.aws, region_name=REGION,
                        aws_access_key_id="x", aws_secret_access_key="x")


def _redrive(twin: TwinProcess, assembly: Path, out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    connections = twin.ws.replace("ws://", "http://", 1)  # the runtime's endpoint: http://host/stage
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "redrive", "--consumer", "echo", "--aws-endpoint",
         twin.aws, "--assembly", str(assembly), "--connections-url", connections, "--json",
         str(out), *extra],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    # stdout is the report only (the handler's logs go to stderr) and no raw EMF metrics line
    # reaches the console: they are metrics only in a Lambda's CloudWatch Logs (issue 25)
    assert not done.stdout.lstrip().startswith("{"), done.stdout
    assert '"_aws"' not in done.stdout + done.stderr, done.stderr[-2000:]
    return done.returncode, json.loads(out.read_text())


def test_failed_record_is_redriven_once_after_the_fix(own_twin: TwinProcess, cloud_assembly: Path,
                                                      tmp_path: Path) -> None:
    ddb, sqs = _client(own_twin, "dynamodb"), _client(own_twin, "sqs")
    (table,) = ddb.list_tables()["TableNames"]
    queue = from_twin("echo", assembly=cloud_assembly, stage="dev", aws_endpoint=own_twin.aws,
                      connections_url=None).queue_url

    def depth() -> int:
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"])

    async def scenario() -> None:
        async with websockets.connect(own_twin.ws, open_timeout=TIMEOUT_S) as ws:
            description = ddb.describe_table(TableName=table)["Table"]
            ddb.delete_table(TableName=table)  # the cause
            await ws.send(json.dumps({"action": "echo", "data": "lost?", "id": "frame-1"}))
            await until(lambda: depth() == 1, timeout=60)

            code, dry = _redrive(own_twin, cloud_assembly, tmp_path / "dry.json", "--dry-run")
            assert code == 0 and dry["dryRun"] is True
            (row,) = dry["messages"]
            assert (row["found"], row["deleted"], row["lost"]) == (1, False, None)
            assert row["action"] == "would re-deliver 1 records"
            assert depth() == 1

            keys = {k["AttributeName"] for k in description["KeySchema"]}
            ddb.create_table(TableName=table, KeySchema=description["KeySchema"],
                             AttributeDefinitions=[a for a in description["AttributeDefinitions"]
                                                   if a["AttributeName"] in keys],
                             BillingMode="PAY_PER_REQUEST")  # the fix (its index not needed)
            code, done = _redrive(own_twin, cloud_assembly, tmp_path / "run.json")
            assert code == 0, done
            (row,) = done["messages"]
            assert (row["redelivered"], row["failed"], row["deleted"]) == (1, [], True)
            assert done["summary"] == {"messages": 1, "deleted": 1, "kept": 0,
                                       "recordsRedelivered": 1, "recordsLost": 0}
            assert depth() == 0

            reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
            assert (reply["action"], reply["data"]) == ("echo", "lost?")
            # Once: the next frame's echo is the next thing this connection receives.
            await ws.send(json.dumps({"action": "echo", "data": "after"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
            assert reply["data"] == "after"

    asyncio.run(scenario())
