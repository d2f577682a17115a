"""Lambda filter criteria on Kinesis records (EventBridge pattern syntax)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.aws.filters import filter_document, matches, record_matches, validate_pattern
from pipeline.aws.kinesis import Record as StoredRecord


def rec(data: Any, key: str = "pk-1") -> StoredRecord:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return StoredRecord("49000000000000000000000000000000000000000000000000000001", key, raw, 1.5)


ENVELOPE = {
    "routeKey": "echo", "eventType": "MESSAGE", "requestTimeEpoch": 1700000000123,
    "stage": "dev", "sourceIp": "10.1.2.3", "tags": ["a", "b"], "nested": {"n": 5, "s": "Hello"},
    "nothing": None, "flag": True,
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"data": {"routeKey": ["echo"]}}, True),
        ({"data": {"routeKey": ["chat", "join"]}}, False),
        ({"data": {"routeKey": [{"prefix": "ec"}]}}, True),
        ({"data": {"routeKey": [{"prefix": {"equals-ignore-case": "EC"}}]}}, True),
        ({"data": {"routeKey": [{"suffix": "ho"}]}}, True),
        ({"data": {"routeKey": [{"suffix": {"equals-ignore-case": "HO"}}]}}, True),
        ({"data": {"routeKey": [{"equals-ignore-case": "ECHO"}]}}, True),
        ({"data": {"routeKey": [{"anything-but": ["chat", "send"]}]}}, True),
        ({"data": {"routeKey": [{"anything-but": "echo"}]}}, False),
        ({"data": {"routeKey": [{"anything-but": {"prefix": "ec"}}]}}, False),
        ({"data": {"routeKey": [{"wildcard": "e*o"}]}}, True),
        ({"data": {"routeKey": [{"wildcard": "e*x"}]}}, False),
        ({"data": {"requestTimeEpoch": [{"numeric": [">", 0, "<=", 1700000000123]}]}}, True),
        ({"data": {"requestTimeEpoch": [{"numeric": ["<", 100]}]}}, False),
        ({"data": {"routeKey": [{"numeric": [">", 0]}]}}, False),  # numeric never matches text
        ({"data": {"missing": [{"exists": False}]}}, True),
        ({"data": {"routeKey": [{"exists": True}]}}, True),
        ({"data": {"missing": [{"exists": True}]}}, False),
        ({"data": {"nested": [{"exists": True}]}}, False),  # exists: leaf nodes only
        ({"data": {"nested": [{"exists": False}]}}, True),
        ({"data": {"missing": [{"anything-but": "x"}]}}, False),  # absent fields never match
        ({"data": {"nothing": [None]}}, True),
        ({"data": {"flag": [True]}}, True),
        ({"data": {"flag": ["true"]}}, False),
        ({"data": {"tags": ["b"]}}, True),  # an array matches when any element matches
        ({"data": {"nested": {"n": [5]}}}, True),
        ({"data": {"nested": {"n": [5.0], "s": [{"prefix": "He"}]}}}, True),
        ({"data": {"nested": {"s": ["hello"]}}}, False),
        ({"data": {"sourceIp": [{"cidr": "10.0.0.0/8"}]}}, True),
        ({"data": {"$or": [{"routeKey": ["chat"]}, {"stage": ["dev"]}]}}, True),
        ({"$or": [{"partitionKey": ["nope"]}, {"data": {"routeKey": ["nope"]}}]}, False),
        ({"partitionKey": [{"prefix": "pk-"}]}, True),
        ({"partitionKey": ["pk-1"], "data": {"routeKey": ["chat"]}}, False),  # AND of fields
    ],
)
def test_pattern_kinds(pattern: dict[str, Any], expected: bool) -> None:
    validate_pattern(pattern)
    assert record_matches([pattern], rec(ENVELOPE)) is expected


def test_filters_are_ored_and_no_filter_keeps_everything() -> None:
    record = rec({"routeKey": "join"})
    assert record_matches([], record)
    assert record_matches([{"data": {"routeKey": ["echo"]}}, {"data": {"routeKey": ["join"]}}],
                          record)
    assert not record_matches([{"data": {"routeKey": ["echo"]}}], record)


@pytest.mark.parametrize("data", [b"\x00\x01binary", b"not json {", b"\xff\xfe"])
def test_non_json_data_never_matches_a_data_pattern(data: bytes) -> None:
    record = rec(data, key="broadcast#lobby")
    for pattern in (
        {"data": {"routeKey": [{"exists": False}]}},
        {"data": {"routeKey": [{"anything-but": "x"}]}},
        {"data": [{"exists": True}]},
    ):
        assert not record_matches([pattern], record)
    # Metadata patterns still work for such records (KPL-aggregated producers rely on this).
    assert record_matches([{"partitionKey": [{"prefix": "broadcast#"}]}], record)


def test_scalar_json_data_does_not_match_nested_pattern() -> None:
    assert not record_matches([{"data": {"routeKey": ["echo"]}}], rec("echo"))
    assert record_matches([{"data": ["echo"]}], rec("echo"))


def test_matches_on_plain_documents() -> None:
    assert matches({"a": {"b": [1]}}, {"a": [{"b": 2}, {"b": 1}]})
    assert not matches({"a": {"b": [1]}}, {"a": "text"})


@pytest.mark.parametrize(
    "pattern",
    [
        {},
        {"data": "echo"},
        {"data": {"routeKey": []}},
        {"data": {"routeKey": [{"regex": "x"}]}},
        {"data": {"n": [{"numeric": [">", "zero"]}]}},
        {"data": {"n": [{"numeric": [">"]}]}},
        {"data": {"n": [{"exists": "yes"}]}},
        {"data": {"n": [{"prefix": 5}]}},
        {"data": {"n": [{"cidr": "not-a-net"}]}},
        {"$or": [{"a": ["b"]}]},
        {"data": {"n": [{"prefix": "a", "suffix": "b"}]}},
    ],
)
def test_invalid_patterns_are_refused_with_a_message(pattern: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        validate_pattern(pattern)


def test_metadata_keys_are_reported() -> None:
    from pipeline.aws.filters import metadata_keys

    assert metadata_keys({"data": {"routeKey": ["echo"]}}) == set()
    assert metadata_keys({"partitionKey": [{"prefix": "b#"}]}) == {"partitionKey"}
    assert metadata_keys({"$or": [{"data": {"a": [1]}}, {"sequenceNumber": ["1"]}]}) == {
        "sequenceNumber"}


def test_pathologically_nested_data_is_not_json_for_filters() -> None:
    record = rec(b"[" * 200_000 + b"]" * 200_000)
    assert not record_matches([{"data": [{"exists": True}]}], record)
    assert record_matches([{"partitionKey": ["pk-1"]}], record)


def test_a_payload_is_parsed_once_for_every_mapping() -> None:
    from pipeline.aws.filters import UNPARSEABLE, parsed_data

    payload = b'{"routeKey": "echo", "n": [1, 2]}'
    first = parsed_data(payload)
    assert first == {"routeKey": "echo", "n": [1, 2]}
    assert parsed_data(bytes(payload)) is first  # equal bytes read by another mapping
    assert parsed_data(b"\xff not json") is UNPARSEABLE


PLAIN_PATTERNS = [
    [{"data": {"routeKey": ["echo"]}}],
    [{"data": {"routeKey": ["join", "leave", "send"]}}],
    [{"data": {"routeKey": ["echo"]}}, {"data": {"room": ["r1"]}}],
    [{"data": {"routeKey": ["send"], "body": {"room": ["r1", "r2"]}}}],
    [{"data": ["plain"]}],
]
DATA = [
    {"routeKey": "echo"}, {"routeKey": "send", "body": {"room": "r1"}},
    {"routeKey": "send", "body": {"room": ["x", ["r2"]]}}, {"routeKey": ["leave", "echo"]},
    {"routeKey": "send", "body": [{"room": "r1"}, {"room": "r9"}]},
    {"routeKey": 1}, {"routeKey": None}, {"routeKey": {"echo": 1}}, {"room": "r1"}, {}, [],
    [{"routeKey": "echo"}], "plain", ["plain"], 7, None, "echo",
    {"routeKey": "send", "body": [{"room": "r9", "x": 1}, {"room": "r2"}]},
]


@pytest.mark.parametrize("patterns", PLAIN_PATTERNS)
def test_plain_string_patterns_answer_as_the_general_matcher(patterns: list[Any]) -> None:
    for value in DATA:
        record = rec(json.dumps(value).encode())
        general = any(matches(p, filter_document(record)) for p in patterns)
        assert record_matches(patterns, record) is general, value
    assert record_matches(patterns, rec(b"not json")) is False


@pytest.mark.parametrize("fan_out", [False, True])
@pytest.mark.parametrize("patterns", [
    *PLAIN_PATTERNS, [],
    [{"data": {"routeKey": [{"prefix": "ec"}]}}], [{"partitionKey": ["pk-1"]}],
    [{"data": {"routeKey": ["echo"], "eventType": ["MESSAGE"]}}],
])
def test_a_mappings_filter_read_once_answers_as_record_matches(
        patterns: list[Any], fan_out: bool) -> None:
    from pipeline.aws.filters import record_filter
    from pipeline.aws.kpl import RecordAggregator

    aggregator = RecordAggregator()  # a real KPL-aggregated record (aws-kinesis-agg)
    aggregator.add_user_record("pk-1", json.dumps({"routeKey": "echo"}).encode())
    _, _, aggregated = aggregator.clear_and_get().get_contents()
    check = record_filter(patterns, fan_out=fan_out)
    records = [rec(json.dumps(value).encode()) for value in DATA]
    records += [rec(b"not json"), rec(b"\xff"), rec(json.dumps(ENVELOPE).encode()),
                rec(aggregated)]
    for record in records:
        assert check(record) is record_matches(patterns, record, fan_out=fan_out), record.data
