"""Stacks and AWS services for tests of the twin's parts.

:func:`stack_of`: a resolved :class:`Stack` from hand-written resources, in the template's shape
with every intrinsic already resolved: ``{logicalId: {"Type": ..., "Properties": {...}, "Ref":
...}}`` ("Ref" defaults to the logical id). :func:`aws_services`: the twin's AWS services on a
free port, with a stack provisioned.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.local.cfn import Resource, Stack
from pipeline.local.services import AwsServices


def stack_of(resources: Mapping[str, Mapping[str, Any]], name: str = "Test") -> Stack:
    """The :class:`Stack` the resolver would have produced for these resolved *resources*."""
    return Stack(name, Path("/nowhere"), {
        lid: Resource(lid, str(spec.get("Type")), dict(spec.get("Properties") or {}),
                      {}, str(spec.get("Ref", lid)), {})
        for lid, spec in resources.items()})


@contextmanager
def aws_services(stack: Stack | None = None) -> Iterator[AwsServices]:
    """The twin's AWS services on a free port, *stack* provisioned, stopped at the end.

    Each owns its Kinesis (streams, limits, listeners); moto's backends (DynamoDB, SQS, Secrets
    Manager) are process-global, so two at once share those tables, queues and secrets.
    """
    svc = AwsServices()
    svc.start(0)
    try:
        if stack is not None:
            svc.provision(stack)
        yield svc
    finally:
        svc.stop()


# A roster-shaped table (pk/sk strings, a KEYS_ONLY byPrincipal index), for DynamoDB tests.
ROSTER_KEYS: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                  {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "S"},
                             {"AttributeName": "principalKey", "AttributeType": "S"}],
    "GlobalSecondaryIndexes": [{
        "IndexName": "byPrincipal", "Projection": {"ProjectionType": "KEYS_ONLY"},
        "KeySchema": [{"AttributeName": "principalKey", "KeyType": "HASH"}]}],
    "BillingMode": "PAY_PER_REQUEST"}
