"""Recorded AWS answers (LocalStack's snapshots) and a comparator that reads their placeholders.

LocalStack's snapshot transformers replace volatile values with placeholders: ``<uuid:1>``,
``<sequence-number:3>``, ``arn:<partition>:kinesis:<region>:111111111111:stream/<resource:1>``,
``<timestamp:2022-07-13T13:48:01.000Z>``, or a bare literal (``"timestamp"`` for a datetime).
:func:`compare` treats a placeholder as "matches its format", and a numbered placeholder as one
value: the same placeholder is the same value everywhere in a case, and two numbers of one name
are two different values. Everything else must be equal; a dict must have exactly the recorded
keys (a key recorded with ``null`` must be present and ``null``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

CASES_DIR = Path(__file__).parent / "cases"

_PLACEHOLDER = re.compile(r"<([a-z0-9_\-]+)(?::([^<>]+))?>")
RECORDED_ACCOUNT = "111111111111"  # LocalStack's stand-in for the recording account's id
_ISO_MS = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAME = r"[A-Za-z0-9_.\-]+"
_SEQUENCE = r"\d{56}"  # Kinesis sequence numbers as AWS hands them out (56 digits)

# What each placeholder name stands for, inside a string (a regular expression).
STRING_FORMATS: dict[str, str] = {
    "sequence-number": _SEQUENCE,
    "sequence_number": _SEQUENCE,
    "start-sequence-number": _SEQUENCE,
    "starting_sequence_number": _SEQUENCE,
    "shard_id": r"shardId-\d{12}",
    "region": r"[a-z]{2}(?:-[a-z]+)+-\d",
    "partition": r"aws(?:-[a-z]+)*",
    "resource": _NAME,
    "uuid": _UUID,
    "m-d5-of-body": r"[0-9a-f]{32}",
    "receipt-handle": r"\S+",
    "next_shard_iterator": r"\S+",
    "timestamp": _ISO_MS,  # <timestamp:EXAMPLE>: an ISO-8601 UTC time with milliseconds
    "stream-name": r"stream/" + _NAME,
    # LocalStack's kinesis_api transformer rewrites "<name>/consumer:<digits>" to this: the
    # consumer ARN AWS returned ended in "consumer/<name>:<creation epoch seconds>" (botocore's
    # Kinesis model gives ConsumerARN the same pattern: ".../consumer/<name>:[0-9]+").
    "stream-consumer": r"consumer/" + _NAME + r":\d+",
    "account": r"\d{12}",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _epoch_seconds(value: Any) -> bool:
    # The recording test asserts int(log10(t)) == 9: epoch seconds, not milliseconds.
    return _is_number(value) and 1e9 <= value < 1e10


# Placeholders (and bare literals) that stand for a whole non-string value.
VALUE_FORMATS: dict[str, Callable[[Any], bool]] = {
    "approximate-arrival-timestamp": _epoch_seconds,
    "execution-start": _is_number,
    "datetime": lambda v: isinstance(v, datetime) or _is_number(v),
    "hash_key": lambda v: isinstance(v, str) and v.isdigit(),
}


@dataclass
class Comparison:
    """Placeholder bindings of one case, and the differences found so far."""

    literals: Mapping[str, str] = field(default_factory=dict)
    bindings: dict[str, Any] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)

    def bind(self, path: str, key: str, value: Any) -> None:
        name = key.split(":", 1)[0]
        if key in self.bindings:
            if self.bindings[key] != value:
                self.differences.append(
                    f"{path}: <{key}> is {value!r} here but {self.bindings[key]!r} elsewhere")
            return
        for other, bound in self.bindings.items():
            if other.split(":", 1)[0] == name and bound == value:
                self.differences.append(
                    f"{path}: {value!r} is both <{other}> and <{key}> (recorded as two values)")
                return
        self.bindings[key] = value


def compare(recorded: Any, actual: Any, comparison: Comparison, path: str = "$") -> None:
    """Record in ``comparison`` every way ``actual`` differs from the recording."""
    if isinstance(recorded, dict):
        _compare_dict(recorded, actual, comparison, path)
    elif isinstance(recorded, list):
        if not isinstance(actual, list):
            comparison.differences.append(f"{path}: expected a list, got {actual!r}")
        elif len(actual) != len(recorded):
            comparison.differences.append(
                f"{path}: {len(actual)} items, AWS recorded {len(recorded)}")
        for i, (rec, act) in enumerate(zip(recorded, actual if isinstance(actual, list) else [],
                                           strict=False)):
            compare(rec, act, comparison, f"{path}[{i}]")
    elif isinstance(recorded, str):
        _compare_string(recorded, actual, comparison, path)
    elif recorded is None or isinstance(recorded, bool):
        if actual is not recorded:
            comparison.differences.append(f"{path}: {actual!r}, AWS recorded {recorded!r}")
    elif actual != recorded or isinstance(actual, bool):
        comparison.differences.append(f"{path}: {actual!r}, AWS recorded {recorded!r}")


def _compare_dict(recorded: dict[str, Any], actual: Any, comparison: Comparison,
                  path: str) -> None:
    if not isinstance(actual, dict):
        comparison.differences.append(f"{path}: expected an object, got {actual!r}")
        return
    if path.endswith("ResponseMetadata"):  # LocalStack keeps only the status (headers dropped)
        recorded = {"HTTPStatusCode": recorded["HTTPStatusCode"]}
        actual = {"HTTPStatusCode": actual.get("HTTPStatusCode")}
    missing = sorted(set(recorded) - set(actual))
    extra = sorted(set(actual) - set(recorded))
    if missing:
        comparison.differences.append(f"{path}: keys missing {missing}")
    if extra:
        comparison.differences.append(f"{path}: keys AWS did not return {extra}")
    for key in recorded:
        if key in actual:
            compare(recorded[key], actual[key], comparison, f"{path}.{key}")


def _compare_string(recorded: str, actual: Any, comparison: Comparison, path: str) -> None:
    kind = comparison.literals.get(recorded)
    whole = _PLACEHOLDER.fullmatch(recorded)
    if kind is None and whole is not None and whole.group(1) in VALUE_FORMATS:
        kind = whole.group(1)
    if kind is not None:
        if not VALUE_FORMATS[kind](actual):
            comparison.differences.append(f"{path}: {actual!r} is not a {kind} ({recorded})")
        return
    if isinstance(actual, bytes):  # LocalStack renders bytes as their Python repr
        if repr(actual) != recorded:
            comparison.differences.append(f"{path}: {actual!r}, AWS recorded {recorded}")
        return
    if not isinstance(actual, str):
        comparison.differences.append(f"{path}: {actual!r}, AWS recorded the string {recorded!r}")
        return
    if "<" not in recorded and RECORDED_ACCOUNT not in recorded:
        if actual != recorded:
            comparison.differences.append(f"{path}: {actual!r}, AWS recorded {recorded!r}")
        return
    pattern, keys = template_pattern(recorded)
    match = re.fullmatch(pattern, actual)
    if match is None:
        comparison.differences.append(f"{path}: {actual!r} does not have the form {recorded!r}")
        return
    for group, key in zip(match.groups(), keys, strict=True):
        if key is not None:
            comparison.bind(path, key, group)


def template_pattern(recorded: str) -> tuple[str, list[str | None]]:
    """A regular expression for a recorded string with placeholders, and the binding key of
    each group (None: a placeholder that names no single value, e.g. ``<timestamp:EXAMPLE>``)."""
    parts: list[str] = []
    keys: list[str | None] = []
    position = 0
    text = recorded.replace(RECORDED_ACCOUNT, "<account>")
    for match in _PLACEHOLDER.finditer(text):
        parts.append(re.escape(text[position:match.start()]))
        name, label = match.group(1), match.group(2)
        if name not in STRING_FORMATS:
            raise KeyError(f"unknown placeholder <{name}> in {recorded!r}")
        parts.append(f"({STRING_FORMATS[name]})")
        numbered = label is not None and label.isdigit()
        keys.append(f"{name}:{label}" if numbered else (name if label is None else None))
        position = match.end()
    parts.append(re.escape(text[position:]))
    return "".join(parts), keys


@dataclass(frozen=True)
class Case:
    """One recorded LocalStack test: what was asked, what AWS answered, how to replay it."""

    file: str
    source: Mapping[str, Any]
    literals: Mapping[str, str]
    data: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def skip(self) -> str | None:
        reason = self.data.get("skip")
        return None if reason is None else str(reason)

    @property
    def recorded(self) -> Any:
        return self.data["recorded"]

    def comparison(self) -> Comparison:
        return Comparison(literals=self.literals)


def load_cases(directory: Path = CASES_DIR) -> Iterator[Case]:
    """Every case of every case file, in file order."""
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for data in document["cases"]:
            yield Case(path.name, document["source"], document.get("literals", {}), data)
