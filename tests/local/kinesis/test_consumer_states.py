"""Stream consumers go CREATING -> ACTIVE, and at most 5 may be CREATING.

"you cannot have more than 5 consumers in a CREATING status at the same time. Registering a 6th
consumer while there are 5 in a CREATING status results in a LimitExceededException":
https://docs.aws.amazon.com/kinesis/latest/APIReference/API_RegisterStreamConsumer.html
"""

from __future__ import annotations

import json

import pytest
from clocks import Clock

from pipeline.local.kinesis import KinesisBackend, KinesisResponses
from pipeline.local.kinesis.exceptions import LimitExceededError

ACCOUNT = "123456789012"


@pytest.fixture
def backend(clock: Clock) -> KinesisBackend:
    kinesis = KinesisBackend("us-east-1", ACCOUNT, clock=clock, consumer_activation_s=5.0)
    kinesis.create_stream("s", 1)
    return kinesis


def _arn(backend: KinesisBackend) -> str:
    return backend.stream("s").arn


def test_a_consumer_is_creating_until_its_activation_delay_has_passed(
    backend: KinesisBackend, clock: Clock
) -> None:
    consumer = backend.register_stream_consumer(_arn(backend), "c0")
    assert backend.consumer(consumer_arn=consumer.arn).status == "CREATING"
    clock.now += 4.9
    assert backend.consumer(consumer_arn=consumer.arn).status == "CREATING"
    clock.now += 0.1
    assert backend.consumer(consumer_arn=consumer.arn).status == "ACTIVE"


def test_a_sixth_registration_while_five_are_creating_is_refused(
    backend: KinesisBackend, clock: Clock
) -> None:
    for i in range(5):
        backend.register_stream_consumer(_arn(backend), f"c{i}")
    with pytest.raises(LimitExceededError) as caught:
        backend.register_stream_consumer(_arn(backend), "c5")
    assert caught.value.code == "LimitExceededException"
    assert caught.value.status == 400
    assert caught.value.message == (
        "This request would exceed the limit on the number of consumers that can "
        f"simultaneously be in CREATING status for stream s under account {ACCOUNT}. Limit: 5.")
    assert "c5" not in backend.stream("s").consumers
    clock.now += 5.0  # the five are ACTIVE: the sixth registers
    assert backend.register_stream_consumer(_arn(backend), "c5").status == "CREATING"


def test_the_wire_shows_creating_then_active(backend: KinesisBackend, clock: Clock) -> None:
    wire = KinesisResponses(backend)
    body = json.dumps({"StreamARN": _arn(backend), "ConsumerName": "c0"}).encode()
    registered = json.loads(wire.handle("RegisterStreamConsumer", body).body)
    assert registered["Consumer"]["ConsumerStatus"] == "CREATING"
    ask = json.dumps({"ConsumerARN": registered["Consumer"]["ConsumerARN"]}).encode()

    def status() -> str:
        answer = json.loads(wire.handle("DescribeStreamConsumer", ask).body)
        return str(answer["ConsumerDescription"]["ConsumerStatus"])

    assert status() == "CREATING"
    clock.now += 5.0
    assert status() == "ACTIVE"


def test_without_a_delay_consumers_are_active_at_once(clock: Clock) -> None:
    backend = KinesisBackend("us-east-1", ACCOUNT, clock=clock)
    backend.create_stream("s", 1)
    for i in range(7):
        assert backend.register_stream_consumer(_arn(backend), f"c{i}").status == "ACTIVE"
