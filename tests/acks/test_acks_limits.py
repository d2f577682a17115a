"""Acks and nacks with AWS's error codes, on an extra twin: ``--enforce-limits`` and a template copy
with an extra acked route, ``denied``, whose integration role may not call kinesis:PutRecord.

The twin runs once per integration response selection rule (``--integration-response-selection``):
AWS does not document which one an AWS-service integration uses, and acks must be right under
both (docs/fidelity.md "Unverified on AWS", verify check ``ack``)."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from pipeline.local.harness import TwinProcess, start_twin, stop_twin

pytestmark = [pytest.mark.twin, pytest.mark.synth]
TIMEOUT_S = 20.0
TEMPLATE = "WebSocketPipeline-dev.template.json"
FRAME_TEXT_BYTES = 30_000  # under the 32 KB frame quota; 35 of them exceed 1 MB/s to one shard
# ~3 MB: over the limit even when a loaded machine needs a few seconds for the burst.
BURST = 100


def _with_denied_route(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``send``'s two-way route and integration as route ``denied``, whose integration
    credentials are a role with no policy at all."""
    out = copy.deepcopy(template)
    res = out["Resources"]
    route_id, route = next((k, v) for k, v in res.items()
                           if v["Type"] == "AWS::ApiGatewayV2::Route"
                           and v["Properties"]["RouteKey"] == "send")
    integration_id = route["Properties"]["Target"]["Fn::Join"][1][-1]["Ref"]
    res["AckDeniedRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "apigateway.amazonaws.com"}}]}}}
    integration = copy.deepcopy(res[integration_id])
    integration["Properties"]["CredentialsArn"] = {"Fn::GetAtt": ["AckDeniedRole", "Arn"]}
    res["AckDeniedIntegration"] = integration
    denied = copy.deepcopy(route)
    denied["Properties"]["RouteKey"] = "denied"
    denied["Properties"]["Target"] = {"Fn::Join": ["", ["integrations/",
                                                        {"Ref": "AckDeniedIntegration"}]]}
    res["AckDeniedRoute"] = denied
    for lid, spec in list(res.items()):
        props = spec.get("Properties", {})
        if spec["Type"] == "AWS::ApiGatewayV2::RouteResponse" and \
                props["RouteId"] == {"Ref": route_id}:
            res["AckDeniedRouteResponse"] = {**copy.deepcopy(spec), "Properties": {
                **props, "RouteId": {"Ref": "AckDeniedRoute"}}}
        if spec["Type"] == "AWS::ApiGatewayV2::IntegrationResponse" and \
                props["IntegrationId"] == {"Ref": integration_id}:
            res[f"AckDenied{lid}"] = {**copy.deepcopy(spec), "Properties": {
                **props, "IntegrationId": {"Ref": "AckDeniedIntegration"}}}
    return out


@pytest.fixture(scope="module", params=["status", "lambda-like"])
def limits_twin(cloud_assembly: Path, tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> Iterator[TwinProcess]:
    assembly = tmp_path_factory.mktemp("acks") / "cdk.out"
    shutil.copytree(cloud_assembly, assembly)
    template = json.loads((assembly / TEMPLATE).read_text())
    (assembly / TEMPLATE).write_text(json.dumps(_with_denied_route(template)))
    running = start_twin(assembly, "--enforce-limits",
                         "--integration-response-selection", request.param)
    yield running
    stop_twin(running)


async def _answers(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next *count* ack/nack frames (the consumer's own replies are skipped)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(found) < count:
        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if frame.get("action") in ("ack", "nack"):
            found.append(frame)
    return found


async def test_a_stored_frame_is_acked_with_its_sequence_number(limits_twin: TwinProcess) -> None:
    async with websockets.connect(limits_twin.ws, open_timeout=TIMEOUT_S) as ws:
        await ws.send(json.dumps({"action": "send", "room": "r", "text": "t", "id": "a-1"}))
        (ack,) = await _answers(ws, 1)
    assert ack["action"] == "ack" and ack["route"] == "send", ack
    assert ack["shardId"].startswith("shardId-") and len(ack["sequenceNumber"]) == 56


async def test_refused_by_iam_is_a_non_retryable_access_denied_nack(limits_twin: TwinProcess) -> None:
    async with websockets.connect(limits_twin.ws, open_timeout=TIMEOUT_S) as ws:
        await ws.send(json.dumps({"action": "denied", "room": "r", "text": "t", "id": "d-1"}))
        (nack,) = await _answers(ws, 1)
    assert nack == {"action": "nack", "route": "denied", "requestId": nack["requestId"],
                    "error": "AccessDeniedException", "retryable": False}


async def test_over_the_shard_write_limit_is_a_retryable_throughput_nack(
        limits_twin: TwinProcess) -> None:
    text = "x" * FRAME_TEXT_BYTES
    async with websockets.connect(limits_twin.ws, open_timeout=TIMEOUT_S) as ws:
        started = time.monotonic()
        for n in range(BURST):  # one connection = one partition key = one shard
            await ws.send(json.dumps({"action": "send", "room": "r", "text": text, "id": n}))
        answers = await _answers(ws, BURST)
        elapsed = time.monotonic() - started
    acks = [a for a in answers if a["action"] == "ack"]
    nacks = [a for a in answers if a["action"] == "nack"]
    assert acks and nacks, answers
    # At most 1 MiB per second of the burst (+1: the burst may straddle a window boundary).
    assert sum(len(text) for _ in acks) <= 1024 * 1024 * (int(elapsed) + 2), elapsed
    assert {n["error"] for n in nacks} == {"ProvisionedThroughputExceededException"}
    assert all(n["retryable"] is True and n["route"] == "send" for n in nacks)
    assert len({a["shardId"] for a in acks}) == 1
