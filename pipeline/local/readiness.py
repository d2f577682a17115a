"""What the twin checks while it starts: that every mapping reads its stream (the canary), and
what a deploy would refuse or every frame would fail on, said once at start-up."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.local.errors import TwinError
from pipeline.local.esm.canary import Canary

if TYPE_CHECKING:
    from pipeline.local.esm import EventSourceMappingRunner
    from pipeline.local.iam.access import AccessControl
    from pipeline.local.services import AwsServices

log = logging.getLogger("pipeline.local.twin")


async def prove_mappings_read(services: AwsServices, canary: Canary,
                              runners: Sequence[EventSourceMappingRunner],
                              timeout_s: float) -> None:
    """Put a canary on every shard the mappings read and wait until each reader has read it
    (``esm/canary.py``): ready means a frame would reach its consumer. Raises TwinError naming
    the first mapping that did not, and its reader's error."""
    data = base64.b64encode(canary.record()).decode()
    for stream_arn in sorted(canary.streams()):
        stream = services.kinesis.stream(arn=stream_arn)  # in process: no client, no socket
        for shard in stream.open_shards:  # a closed shard takes no new record
            body = orjson.dumps({
                "StreamName": stream.name, "PartitionKey": canary.key,
                "ExplicitHashKey": str(shard.starting_hash), "Data": data})
            answer = services.call_aws("kinesis", "PutRecord", body, None)
            if answer.status != 200:
                raise TwinError(f"the start-up canary could not be put on {stream.name}: "
                                f"{answer.error_type} {answer.body[:200]!r}")
    missing = await canary.wait(timeout_s)
    if missing:
        mapping, shard_id = missing[0]
        runner = next(r for r in runners if r.config.uuid == mapping)
        why = runner.read_error or "no error was raised; the reader never got it"
        raise TwinError(f"mapping {runner.label} did not read the start-up canary from "
                        f"{shard_id} within {timeout_s:g} s ({len(missing)} "
                        f"readers missing): {why}")


def log_mapping_problems(access: AccessControl, res: Any, role: str) -> None:
    """What CreateEventSourceMapping would refuse (the role cannot read or send), as errors."""
    from pipeline.local.iam.mappings import mapping_problems

    p = res.properties
    destination = ((p.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    for problem in mapping_problems(access, role, str(p.get("EventSourceArn", "")), destination):
        log.error("%s: InvalidParameterValueException at deploy: %s", res.logical_id, problem)


def warn_about_content_types(api: Any) -> None:
    """Say at start-up what every frame would otherwise say later: Kinesis refuses a Content-Type
    other than JSON 1.1 (content_types.py), so a Kinesis integration without that static
    request parameter fails every frame, here as on AWS."""
    from pipeline.local.content_types import GATEWAY_DEFAULT, kinesis_refusal

    for route in api.routes.values():
        integration = route.integration
        if integration is None or integration.service != "kinesis":
            continue
        sent = integration.static_header("Content-Type") or GATEWAY_DEFAULT
        if kinesis_refusal(sent) is not None:
            log.warning("route %s: its Kinesis integration sends Content-Type %s; Kinesis "
                        "refuses it (set integration.request.header.Content-Type to "
                        "'application/x-amz-json-1.1')", route.route_key, sent)
