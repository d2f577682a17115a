"""``-c streamMode=on-demand``: the template declares no shard count, the twin creates the stream
as AWS does (on-demand, with the 4 shards a new on-demand stream starts with) and frames flow.

One extra synth for this module (on-demand, with ``alarmEmail``); the operations tests read it too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets

from pipeline.aws.limits import REGION
from pipeline.local.harness import TwinProcess, start_twin, stop_twin

pytestmark = [pytest.mark.twin, pytest.mark.synth]


@pytest.fixture(scope="module")
def on_demand_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.infrastructure.synth import synthesize

    outdir = tmp_path_factory.mktemp("cdk.out.ondemand")
    return synthesize(outdir, {"stage": "dev", "streamMode": "on-demand",
                               "alarmEmail": "ops@example.com"})


@pytest.fixture(scope="module")
def on_demand_template(on_demand_assembly: Path) -> dict[str, Any]:
    path = on_demand_assembly / "WebSocketPipeline-dev.template.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def on_demand_twin(on_demand_assembly: Path) -> Iterator[TwinProcess]:
    running = start_twin(on_demand_assembly)
    yield running
    stop_twin(running)


def _of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_template_declares_an_on_demand_stream(on_demand_template: dict[str, Any]) -> None:
    (stream,) = _of_type(on_demand_template, "AWS::Kinesis::Stream")
    assert stream["Properties"]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert "ShardCount" not in stream["Properties"]


def test_alarm_email_subscribes_the_address(on_demand_template: dict[str, Any]) -> None:
    (sub,) = _of_type(on_demand_template, "AWS::SNS::Subscription")
    assert sub["Properties"]["Protocol"] == "email"
    assert sub["Properties"]["Endpoint"] == "ops@example.com"


def test_twin_runs_the_on_demand_stream(on_demand_twin: TwinProcess) -> None:
    kinesis = boto3.client("kinesis", endpoint_url=on_demand_twin.aws, region_name=REGION,
                           aws_access_key_id="x", aws_secret_access_key="x")
    (name,) = kinesis.list_streams()["StreamNames"]
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert summary["OpenShardCount"] == 4

    async def echo() -> Any:
        async with websockets.connect(on_demand_twin.ws, open_timeout=15) as ws:
            await ws.send(json.dumps({"action": "echo", "data": "on-demand"}))
            return json.loads(await asyncio.wait_for(ws.recv(), 15))

    reply = asyncio.run(echo())
    assert reply["action"] == "echo" and reply["data"] == "on-demand"
