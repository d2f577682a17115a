"""Decoding Lambda Kinesis records: base64, KPL de-aggregation, envelope parsing."""

from __future__ import annotations

import base64

import pytest
from runtime_kit.kinesis_events import A, envelope, event, load

from pipeline.runtime import UndecodableRecord, decode_record


def test_plain_record_decodes_to_one_envelope_with_its_metadata() -> None:
    record = load("kinesis_echo")["Records"][0]
    (env,) = decode_record(record)
    assert env.route_key == "echo"
    assert env.event_type == "MESSAGE"
    assert env.connection_id == A
    assert env.request_time_epoch == 1700000000123
    assert env.sequence_number == record["kinesis"]["sequenceNumber"]
    assert env.sub_sequence_number is None
    assert env.partition_key == A
    assert env.arrival_ms == 1700000000187
    assert env.body_json() == {"action": "echo", "data": {"n": 1, "s": "hé"}}


def test_aggregated_record_yields_every_user_record_under_the_parent_sequence_number() -> None:
    records = load("kinesis_aggregated_broadcast")["Records"]
    subs = decode_record(records[0])
    assert [e.sub_sequence_number for e in subs] == [0, 1, 2]
    assert {e.sequence_number for e in subs} == {records[0]["kinesis"]["sequenceNumber"]}
    assert [e.body_json()["data"] for e in subs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(e.partition_key == "broadcast#lobby" and e.event_type == "SERVER" for e in subs)
    (plain,) = decode_record(records[1])  # a plain SERVER record passes through
    assert plain.body_json() == {"room": None, "data": "all"}


@pytest.mark.parametrize(("index", "reason"), [
    (0, "not an envelope: not JSON"),
    (1, "KPL"),
    (2, "missing field 'eventType'"),
])
def test_undecodable_records_raise_with_their_sequence_number(index: int, reason: str) -> None:
    record = load("kinesis_undecodable")["Records"][index]
    with pytest.raises(UndecodableRecord) as info:
        decode_record(record)
    assert info.value.sequence_number == record["kinesis"]["sequenceNumber"]
    assert reason in info.value.reason


def test_bad_base64_is_undecodable() -> None:
    record = event((A, b"x"))["Records"][0]
    record["kinesis"]["data"] = "%%% not base64 %%%"
    with pytest.raises(UndecodableRecord, match="base64"):
        decode_record(record)


def test_wrong_field_types_are_undecodable() -> None:
    data = envelope("echo", A, "{}").replace(b'"requestTimeEpoch": 1700000000123',
                                             b'"requestTimeEpoch": "soon"')
    with pytest.raises(UndecodableRecord, match="requestTimeEpoch"):
        decode_record(event((A, data))["Records"][0])


def test_body_helpers_never_raise_for_non_object_bodies() -> None:
    (env,) = decode_record(event((A, envelope("$default", A, "not json {")))["Records"][0])
    assert env.body == "not json {"
    assert env.body_object() is None
    with pytest.raises(ValueError, match="not JSON"):
        env.body_json()
    (arr,) = decode_record(event((A, envelope("$default", A, "[1,2]")))["Records"][0])
    assert arr.body_object() is None and arr.body_json() == [1, 2]


def test_a_body_sent_as_an_object_is_kept_as_its_json_text() -> None:
    raw = base64.b64decode(event((A, envelope("echo", A, "{}")))["Records"][0]["kinesis"]["data"])
    data = raw.replace(b'"body": "{}"', b'"body": {"action": "echo"}')
    (env,) = decode_record(event((A, data))["Records"][0])
    assert env.body_json() == {"action": "echo"}


def test_importing_the_runtime_leaves_sys_path_as_it_was() -> None:
    """aws-kinesis-agg puts its folder and site-packages first on import; the runtime restores the
    path, so a Lambda layer never overtakes the function's own code (nor PYTHONPATH)."""
    import subprocess
    import sys

    probe = ("import sys; before = list(sys.path); import pipeline.runtime.records, "
             "pipeline.publish; print(sys.path == before)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "True"
