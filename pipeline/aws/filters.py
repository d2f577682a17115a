"""Lambda event filtering for Kinesis sources (EventBridge pattern syntax), pure functions.

A record is kept when at least one filter matches (filters are OR'ed). The document a pattern
sees is the record's ``kinesis`` metadata with ``data`` decoded as JSON. Data that is not valid
JSON never matches a pattern that mentions ``data`` (not even ``exists: false``/``anything-but``):
https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html#filtering-kinesis
Syntax: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html

KPL-aggregated records: their data is not JSON, so a ``data`` pattern never matches them on a
shared-throughput mapping; on an enhanced fan-out mapping Lambda applies the filter to the
aggregated user records ("Filtering Kinesis aggregated records",
https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis-filtering.html). The twin keeps such a
record (whole, the function de-aggregates it) when any of its user records matches.

Metadata keys (``partitionKey``, ``sequenceNumber``, ...) are matched too, but the same page says
"Kinesis event source mappings only support filtering on the data key"; :func:`metadata_keys`
lets the runner warn about such patterns so they are not relied on.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from .kinesis import Record, is_aggregated

_OPERATORS = frozenset(
    {"prefix", "suffix", "anything-but", "numeric", "exists", "equals-ignore-case", "wildcard",
     "cidr"}
)
_NUMERIC_OPS = frozenset({"<", "<=", "=", ">", ">="})


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING = _Sentinel("MISSING")  # the field is absent
UNPARSEABLE = _Sentinel("UNPARSEABLE")  # record data that is not JSON: matches nothing


PARSED_MEMORY = 4096
_parsed: OrderedDict[bytes, Any] = OrderedDict()


def parsed_data(data: bytes) -> Any:
    """The record data as JSON (UNPARSEABLE when it is not), parsed once for every mapping.

    Each of a stream's mappings filters every record: the last :data:`PARSED_MEMORY` payloads'
    parses are shared (read-only) instead of parsing the same bytes once per mapping.
    """
    hit = _parsed.get(data, MISSING)
    if hit is not MISSING:
        return hit
    try:
        value: Any = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested beyond the parser
        value = UNPARSEABLE
    _parsed[data] = value
    if len(_parsed) > PARSED_MEMORY:
        _parsed.popitem(last=False)
    return value


def filter_document(record: Record) -> dict[str, Any]:
    """What a Kinesis filter pattern is evaluated against."""
    data = parsed_data(record.data)
    return {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": record.partition_key,
        "sequenceNumber": record.sequence_number,
        "approximateArrivalTimestamp": record.approximate_arrival_timestamp,
        "data": data,
    }


def record_matches(
    filters: Iterable[Mapping[str, Any]], record: Record, *, fan_out: bool = False
) -> bool:
    """True when there are no filters or any filter matches the record.

    ``fan_out``: the mapping reads through an enhanced fan-out consumer, so a KPL-aggregated
    record matches when one of its user records does (see the module docstring).
    """
    patterns = filters if isinstance(filters, list | tuple) else list(filters)
    if not patterns:
        return True
    plain = _plain_patterns(patterns)
    if plain is not None:
        data = parsed_data(record.data)
        if data is not UNPARSEABLE:  # (unparseable data: the general path, KPL included)
            verdicts = [_has_one_of(data, path, allowed)
                        for pattern in plain for path, allowed in pattern]
            if None not in verdicts:
                i = 0
                for pattern in plain:
                    if all(verdicts[i:i + len(pattern)]):
                        return True
                    i += len(pattern)
                return False
    document = filter_document(record)
    if any(matches(p, document) for p in patterns):
        return True
    if fan_out and document["data"] is UNPARSEABLE:
        return any(
            matches(p, filter_document(user)) for user in user_records(record) for p in patterns
        )
    return False



def record_filter(filters: Iterable[Mapping[str, Any]], *, fan_out: bool = False
                  ) -> Callable[[Record], bool]:
    """:func:`record_matches` for one mapping's ``filters``, read once: the check its readers
    make on every record put to the stream. The usual filter, one plain pattern on one field of
    ``data`` (``{"data": {"routeKey": ["echo"]}}``), is a dict lookup and a set membership for a
    record whose data is a JSON object with a string there; anything else asks
    :func:`record_matches`, which answers the same for every record (tests compare the two)."""
    patterns = list(filters)
    if not patterns:
        return _keep
    plain = _plain_patterns(patterns)
    if plain is None or len(plain) != 1 or len(plain[0]) != 1 or len(plain[0][0][0]) != 1:
        return lambda record: record_matches(patterns, record, fan_out=fan_out)
    (((key,), allowed),) = plain[0]

    def check(record: Record) -> bool:
        data = parsed_data(record.data)
        if type(data) is dict:
            value = data.get(key)
            if type(value) is str:
                return value in allowed
        return record_matches(patterns, record, fan_out=fan_out)

    return check


def _keep(record: Record) -> bool:
    return True


def user_records(record: Record) -> list[Record]:
    """The user records of a KPL-aggregated record ([] when it is not a valid aggregate),
    de-aggregated as the runtime does (:func:`pipeline.aws.kpl.deaggregate`)."""
    if not is_aggregated(record.data):
        return []
    from .kpl import KplError, deaggregate

    try:
        users = deaggregate(record.data, partition_key=record.partition_key,
                            sequence_number=record.sequence_number,
                            approximate_arrival_timestamp=record.approximate_arrival_timestamp)
    except KplError:
        return []
    return [Record(record.sequence_number, user.partition_key, user.data,
                   record.approximate_arrival_timestamp) for user in users]


# --- plain patterns: string equality on data only ----------------------------------------------
# Most mappings filter on one field of data (``{"data": {"routeKey": ["echo"]}}``) and every one
# of a stream's mappings looks at every record put: such a pattern is read once into
# (path under data, allowed strings) pairs and checked without walking the general matcher.
PlainPattern = tuple[tuple[tuple[str, ...], frozenset[str]], ...]
_plain: dict[int, tuple[object, tuple[PlainPattern, ...] | None]] = {}


def _plain_patterns(patterns: list[Any] | tuple[Any, ...]) -> tuple[PlainPattern, ...] | None:
    """The patterns as plain (path, strings) checks, or None when any uses more than string
    equality under ``data`` (operators, numbers, ``$or``, metadata keys). Read once per list."""
    hit = _plain.get(id(patterns))
    if hit is not None and hit[0] is patterns:
        return hit[1]
    out: list[PlainPattern] | None = []
    for pattern in patterns:
        pairs = _plain_pairs(pattern, ()) if _is_map(pattern) and set(pattern) == {"data"} else None
        if pairs is None:
            out = None
            break
        assert out is not None
        out.append(tuple(pairs))
    compiled = tuple(out) if out is not None else None
    if len(_plain) > 256:
        _plain.clear()
    _plain[id(patterns)] = (patterns, compiled)
    return compiled


def _plain_pairs(pattern: Mapping[str, Any], path: tuple[str, ...]
                 ) -> list[tuple[tuple[str, ...], frozenset[str]]] | None:
    pairs: list[tuple[tuple[str, ...], frozenset[str]]] = []
    for key, expected in pattern.items():
        if not isinstance(key, str) or key.startswith("$"):
            return None
        if _is_map(expected):
            nested = _plain_pairs(expected, (*path, key))
            if nested is None or not nested:
                return None
            pairs += nested
        elif (isinstance(expected, list) and expected
              and all(type(m) is str for m in expected)):
            pairs.append(((*path, key), frozenset(expected)))
        else:
            return None
    # the top call strips "data": paths are read from the parsed data
    return [(p[1:], allowed) for p, allowed in pairs] if not path else pairs


def _has_one_of(value: Any, path: tuple[str, ...], allowed: frozenset[str]) -> bool | None:
    """The general matcher's answer for a plain pair: the value at ``path`` is one of the
    ``allowed`` strings (an array there: any of its elements, at any depth). None when an array
    sits on the path: the general matcher decides (all keys against the same element)."""
    for key in path:
        if not _is_map(value):
            return None if isinstance(value, list) else False
        value = value.get(key, MISSING)
    return _one_of(value, allowed)


def _one_of(value: Any, allowed: frozenset[str]) -> bool:
    if isinstance(value, list):
        return any(_one_of(v, allowed) for v in value)
    return type(value) is str and value in allowed


def _is_map(value: Any) -> bool:
    """``isinstance(value, Mapping)``, with parsed JSON's ``dict`` answered without the ABC check
    (the matchers run for every record and every mapping)."""
    return type(value) is dict or isinstance(value, Mapping)


def matches(pattern: Mapping[str, Any], document: Any) -> bool:
    """EventBridge semantics: every key of the pattern must match (AND); ``$or`` is OR."""
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(branch, document) for branch in expected):
                return False
            continue
        value = document.get(key, MISSING) if _is_map(document) else MISSING
        if _is_map(expected):
            if not _match_nested(expected, value):
                return False
        elif not any(_match_leaf(m, value) for m in expected):
            return False
    return True


def _match_nested(pattern: Mapping[str, Any], value: Any) -> bool:
    if value is UNPARSEABLE:
        return False
    if isinstance(value, list):
        return any(_match_nested(pattern, v) for v in value)
    return matches(pattern, value if _is_map(value) else {})


def _match_leaf(matcher: Any, value: Any) -> bool:
    if value is UNPARSEABLE:
        return False
    if _is_map(matcher) and "exists" in matcher:
        # "Exists matching only works on leaf nodes. It does not work on intermediate nodes."
        # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
        present = value is not MISSING and not _is_map(value)
        return present == bool(matcher["exists"])
    if value is MISSING:
        return False
    if isinstance(value, list):  # an array matches when any element matches
        return any(_match_leaf(matcher, v) for v in value)
    if not _is_map(matcher):
        return _equal(matcher, value)
    ((op, arg),) = matcher.items()
    if op == "anything-but":
        return not _anything_but_hit(arg, value)
    if op == "numeric":
        return _numeric(arg, value)
    if op == "cidr":
        return _cidr(arg, value)
    return isinstance(value, str) and _string_op(op, arg, value)


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool) or expected is None or value is None:
        return type(expected) is type(value) and expected == value
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return isinstance(expected, str) and isinstance(value, str) and expected == value


def _string_op(op: str, arg: Any, value: str) -> bool:
    if op == "equals-ignore-case":
        return value.casefold() == str(arg).casefold()
    if op == "wildcard":
        return _wildcard_regex(str(arg)).fullmatch(value) is not None
    ignore_case = isinstance(arg, Mapping)
    text = str(arg["equals-ignore-case"]) if ignore_case else str(arg)
    subject = value.casefold() if ignore_case else value
    text = text.casefold() if ignore_case else text
    return subject.startswith(text) if op == "prefix" else subject.endswith(text)


def _anything_but_hit(arg: Any, value: Any) -> bool:
    """True when ``value`` is one of the excluded things."""
    if isinstance(arg, Mapping):
        ((op, inner),) = arg.items()
        if not isinstance(value, str):
            return False
        options = inner if isinstance(inner, list) else [inner]
        return any(_string_op(op, o, value) for o in options)
    options = arg if isinstance(arg, list) else [arg]
    return any(_equal(o, value) for o in options)


def _numeric(arg: list[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    for i in range(0, len(arg), 2):
        op, bound = arg[i], float(arg[i + 1])
        ok = {
            "<": value < bound, "<=": value <= bound, "=": value == bound,
            ">": value > bound, ">=": value >= bound,
        }[op]
        if not ok:
            return False
    return True


def _cidr(arg: str, value: Any) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_address(value) in ipaddress.ip_network(arg)
    except ValueError:
        return False


@lru_cache(maxsize=256)
def _wildcard_regex(text: str) -> re.Pattern[str]:
    parts = re.split(r"(?<!\\)\*", text)
    return re.compile(".*".join(re.escape(p.replace("\\*", "*")) for p in parts), re.DOTALL)


def metadata_keys(pattern: Mapping[str, Any]) -> set[str]:
    """Top-level keys of a pattern (through ``$or``) other than ``data``."""
    keys: set[str] = set()
    for key, value in pattern.items():
        if key == "$or" and isinstance(value, list):
            for branch in value:
                if isinstance(branch, Mapping):
                    keys |= metadata_keys(branch)
        elif key != "data":
            keys.add(key)
    return keys


def validate_pattern(pattern: Any, *, _depth: int = 0) -> None:
    """Raise ``ValueError`` with a clear message when ``pattern`` is not valid filter syntax."""
    if not isinstance(pattern, Mapping) or not pattern:
        raise ValueError(f"a filter pattern must be a non-empty JSON object: {pattern!r}")
    if _depth > 20:
        raise ValueError("filter pattern nested too deeply")
    for key, expected in pattern.items():
        if key == "$or":
            if not isinstance(expected, list) or len(expected) < 2:
                raise ValueError("$or takes a list of at least two patterns")
            for branch in expected:
                validate_pattern(branch, _depth=_depth + 1)
        elif isinstance(expected, Mapping):
            validate_pattern(expected, _depth=_depth + 1)
        elif isinstance(expected, list) and expected:
            for matcher in expected:
                _validate_matcher(key, matcher)
        else:
            raise ValueError(f"{key!r}: a pattern value must be an object or a non-empty array")


def _validate_matcher(key: str, matcher: Any) -> None:
    if matcher is None or isinstance(matcher, str | int | float | bool):
        return
    if not isinstance(matcher, Mapping) or len(matcher) != 1:
        raise ValueError(f"{key!r}: invalid matcher {matcher!r}")
    ((op, arg),) = matcher.items()
    if op not in _OPERATORS:
        raise ValueError(f"{key!r}: unknown operator {op!r}")
    if op == "exists" and not isinstance(arg, bool):
        raise ValueError(f"{key!r}: exists takes true or false")
    if op == "numeric":
        if not isinstance(arg, list) or not arg or len(arg) % 2:
            raise ValueError(f"{key!r}: numeric takes [op, number, ...]")
        for i in range(0, len(arg), 2):
            bound = arg[i + 1]
            if arg[i] not in _NUMERIC_OPS or isinstance(bound, bool) or not isinstance(
                bound, int | float
            ):
                raise ValueError(f"{key!r}: invalid numeric comparison {arg!r}")
    if op in ("prefix", "suffix") and not (
        isinstance(arg, str)
        or (isinstance(arg, Mapping) and list(arg) == ["equals-ignore-case"]
            and isinstance(arg["equals-ignore-case"], str))
    ):
        raise ValueError(f"{key!r}: {op} takes a string or {{equals-ignore-case: string}}")
    if op in ("equals-ignore-case", "wildcard", "cidr") and not isinstance(arg, str):
        raise ValueError(f"{key!r}: {op} takes a string")
    if op == "cidr":
        try:
            ipaddress.ip_network(arg)
        except ValueError as exc:
            raise ValueError(f"{key!r}: invalid cidr {arg!r}") from exc
    if op == "anything-but":
        if isinstance(arg, Mapping):
            if len(arg) != 1 or next(iter(arg)) not in ("prefix", "suffix", "equals-ignore-case",
                                                          "wildcard"):
                raise ValueError(f"{key!r}: invalid anything-but {arg!r}")
        elif isinstance(arg, list):
            if not all(v is None or isinstance(v, str | int | float) for v in arg):
                raise ValueError(f"{key!r}: anything-but list takes literals")
        elif not (arg is None or isinstance(arg, str | int | float)):
            raise ValueError(f"{key!r}: invalid anything-but {arg!r}")
