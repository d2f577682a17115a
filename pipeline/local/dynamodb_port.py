"""DynamoDB on the twin's AWS port without Flask: moto's in-process request path, and a plain
BatchWriteItem or Query straight to its tables.

The port's other services go through moto's server app (:mod:`.moto_dispatch`: werkzeug and
Flask in front of each service's handler). For DynamoDB, the functions' roster calls, that front
cost more than the call: py-spy on the port serving one empty-partition Query after another put
Flask's request and response handling at ~30 % of the port thread, moto's handler at ~45 %
(its table work at 4 %), aiohttp's HTTP at ~25 %. :class:`DynamoDbPort` hands a DynamoDB JSON
request (``X-Amz-Target: DynamoDB_20120810.*``) to the handler moto's server would reach
through Flask, the one ``mock_aws`` serves boto3 with (``normalize_request`` and the backend's
URL handler, as :class:`~.aws_door.AwsDoor` does), with the request's own headers and body: the
same status, headers (less Flask's CORS header, plus a ``date``) and body.

A *plain* BatchWriteItem, what the roster's joins, leaves and disconnects write, goes to moto's
backend directly, as moto's handler would take it (:func:`plain_batch_write`): only
``RequestItems``, at most 25 requests, each a ``PutRequest`` of an ``Item`` or a
``DeleteRequest`` of a ``Key`` made of string, integer, boolean and null attributes, the keys
exactly the table's. moto's own checks run first (an empty key value, duplicates: then the
request path answers), then the puts and the deletes in moto's order; the answer is the body
and headers moto's handler gives. If the backend refuses one (an item too large...), the request
path runs the whole request again and answers as moto does: putting or deleting the same items
twice leaves what once does. ``tests/local/test_dynamodb_port.py`` compares both paths.

Where moto's handlers fail rather than answer, the port answers as DynamoDB does: a body that is
not a JSON object gets 400 ``SerializationException`` (moto raised a ``KeyError``, which its
server turned into a 500 page), an operation DynamoDB does not have 400
``UnknownOperationException``, a Query's or Scan's ``Limit`` below 1 DynamoDB's 400
``ValidationException`` (moto: an ``IndexError``), and any other failure of moto a JSON 500
``InternalServerError``.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
import string
import zlib
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any, TypeGuard

import orjson
from botocore.awsrequest import AWSPreparedRequest
from botocore.compat import HTTPHeaders
from botocore.model import OperationNotFoundError
from moto.backends import get_backend
from moto.core.request import normalize_request
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

from pipeline.aws.errors import SERIALIZATION, UNKNOWN_OPERATION
from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.ddb_query import IndexedQueryTable
from pipeline.local.kinesis.wsgi import read_body
from pipeline.local.moto_dispatch import INTEGER as _INTEGER
from pipeline.local.moto_dispatch import moto_handler, plain_item, plain_value
from pipeline.local.wsgi_server import environ_headers

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

TARGET_PREFIX = "DynamoDB_20120810."
BATCH_WRITE_MAX = 25  # DynamoDB's limit of requests in one BatchWriteItem
# moto's message for an empty key value in a batch (its handler's custom_error_msg)
_EMPTY_KEY = ("One or more parameter values are not valid. The AttributeValue for a key "
              "attribute cannot contain an empty string value. Key: {}")
_REASONS = {200: "OK", 400: "BAD REQUEST", 404: "NOT FOUND", 413: "REQUEST ENTITY TOO LARGE",
            500: "INTERNAL SERVER ERROR"}
_ID_ALPHABET = string.ascii_letters + string.digits


class DynamoDbPort:
    """DynamoDB JSON requests through moto's in-process request path; the rest to ``other``."""

    def __init__(self, other: WsgiApp) -> None:
        self.other = other

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith(TARGET_PREFIX) or environ.get("REQUEST_METHOD") != "POST":
            return self.other(environ, start_response)
        body = read_body(environ)
        req = _json_object(body) if body.strip() else {}
        if req is None:
            # moto's handlers fail on it (a KeyError: a 500 from its server); DynamoDB answers
            return _error(start_response, 400, SERIALIZATION,
                          "The request body is not a JSON object")
        refusal = _limit_refusal(target, req)
        if refusal is not None:  # moto fails on it (an IndexError: a 500 from its server)
            return _error(start_response, 400, "ValidationException", refusal)
        direct = _DIRECT.get(target[len(TARGET_PREFIX):])
        if direct is not None:
            answer = direct(req)
            if answer is not None:
                start_response("200 OK", _headers(answer, "application/x-amz-json-1.0"))
                return [answer]
        try:
            status, headers, data = _request_path(environ, body)
        except OperationNotFoundError:  # moto's server: a 500 page
            return _error(start_response, 400, UNKNOWN_OPERATION,
                          f"{target[len(TARGET_PREFIX):]} is not a DynamoDB operation")
        except Exception as exc:  # a moto failure (its server: werkzeug's 500 page)
            log.exception("moto failed on %s", target)
            return _error(start_response, 500, "InternalServerError",
                          f"the twin's DynamoDB (moto) failed: {type(exc).__name__}")
        out = [(str(k), str(v)) for k, v in headers.items() if str(k).lower() != "content-length"]
        out.append(("Content-Length", str(len(data))))
        start_response(f"{status} {_REASONS.get(status, 'ERROR')}", out)
        return [data]


def _request_path(environ: dict[str, Any], body: bytes) -> tuple[int, Any, bytes]:
    """moto's answer through its in-process request path: ``(status, headers, body)``."""
    headers = HTTPHeaders()
    for name, value in environ_headers(environ).items():
        headers[name] = value
    host = str(environ.get("HTTP_HOST") or
               f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '80')}")
    query = str(environ.get("QUERY_STRING", ""))
    url = f"http://{host}{environ.get('PATH_INFO') or '/'}" + (f"?{query}" if query else "")
    request = normalize_request(AWSPreparedRequest("POST", url, headers, body, False))
    status, answer_headers, answer = moto_handler("dynamodb")(request, request.raw_url,
                                                              request.headers)
    data = answer.encode() if isinstance(answer, str) else bytes(answer or b"")
    return int(status), answer_headers, data


def plain_batch_write(req: dict[str, Any]) -> bytes | None:
    """Write a plain BatchWriteItem (``req``: the parsed request) straight to moto's backend;
    its answer's body, or None (nothing written, or a refusal: the request path then answers,
    as moto does)."""
    if req.keys() != {"RequestItems"}:
        return None
    batches = req["RequestItems"]
    if not isinstance(batches, dict) or not batches:
        return None
    backend: Any = get_backend("dynamodb")[ACCOUNT_ID][REGION]
    puts: list[tuple[str, dict[str, Any]]] = []
    deletes: list[tuple[str, dict[str, Any]]] = []
    try:
        for name, requests in batches.items():
            if not isinstance(requests, list) or not requests:
                return None
            table = backend.get_table(name)
            keys = {table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])}
            seen: set[tuple[str, bytes]] = set()
            for request in requests:
                if not isinstance(request, dict) or len(request) != 1:
                    return None
                ((kind, inner),) = request.items()
                field = {"PutRequest": "Item", "DeleteRequest": "Key"}.get(kind)
                if field is None or not isinstance(inner, dict) or inner.keys() != {field}:
                    return None
                attrs = inner[field]
                if not plain_item(attrs) or not keys <= attrs.keys() or (
                        kind == "DeleteRequest" and attrs.keys() != keys):
                    return None
                # a repeated key: moto's duplicate check answers (it compares whole items)
                key = (kind, orjson.dumps({k: attrs[k] for k in sorted(keys)}))
                if key in seen:
                    return None
                seen.add(key)
                if kind == "PutRequest":
                    dynamodb_responses.validate_put_has_empty_keys(
                        attrs, table, custom_error_msg=_EMPTY_KEY)
                    puts.append((name, attrs))
                else:
                    deletes.append((name, attrs))
        if len(puts) + len(deletes) > BATCH_WRITE_MAX:
            return None
        for name, item in puts:  # moto's handler: every put, then every delete
            backend.put_item(name, item)
        for name, key_attrs in deletes:
            backend.delete_item(name, key_attrs)
    except Exception:  # moto refused it: the request path answers (see the module docstring)
        return None
    # moto's handler's answer, as its serializer writes it (json.dumps' separators)
    return json.dumps({
        "UnprocessedItems": {}, "ItemCollectionMetrics": {},
        "ConsumedCapacity": [{"TableName": name, "CapacityUnits": 1.0,
                              "Table": {"CapacityUnits": 1.0}} for name in batches],
    }).encode()


_QUERY_FIELDS = frozenset({"TableName", "KeyConditionExpression", "ExpressionAttributeValues",
                           "ConsistentRead", "ProjectionExpression", "Limit", "ExclusiveStartKey",
                           "ScanIndexForward"})
_KEY_CONDITION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(:[A-Za-z0-9_]+)\s*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCALARS = frozenset({"S", "N", "BOOL", "NULL"})


def plain_query(req: dict[str, Any]) -> bytes | None:
    """Answer a plain Query (``req``: the parsed request) of one of the template's tables
    (:class:`~.ddb_query.IndexedQueryTable`) from the partition's kept order, walked as moto
    walks it (:func:`_read_partition`); its answer's body, or None (the request path then
    answers: a read, nothing to undo). Plain: the partition key's equality (``name = :value``,
    no placeholder names), at most a ``ProjectionExpression`` of top-level names, ``Limit``,
    ``ExclusiveStartKey`` (the table's key, in the queried partition), ``ScanIndexForward`` and
    ``ConsistentRead``, on the table (not an index), and answered items of string, number,
    boolean and null attributes. Measured on the port, the twin's CPU for an empty partition
    1.24 -> 0.16 ms, a ``Limit`` 101 read of 10,000 members 71 -> 0.9 ms, a 10,000-member
    room's paginated read 1.48 s -> 30 ms."""
    if (not req.keys() <= _QUERY_FIELDS
            or not {"TableName", "KeyConditionExpression", "ExpressionAttributeValues"}
            <= req.keys()):
        return None
    backend: Any = get_backend("dynamodb")[ACCOUNT_ID][REGION]
    try:
        table = backend.get_table(req["TableName"])
    except Exception:
        return None
    if not isinstance(table, IndexedQueryTable):  # a table made at run time: moto's path
        return None
    condition = req["KeyConditionExpression"]
    match = _KEY_CONDITION.fullmatch(condition) if isinstance(condition, str) else None
    reserved = _reserved()
    if match is None or match[1] != table.hash_key_attr or match[1].upper() in reserved:
        return None
    values = req["ExpressionAttributeValues"]
    value = values.get(match[2]) if isinstance(values, dict) and len(values) == 1 else None
    if not _typed_plain(value, table.hash_key_type):
        return None
    projection: list[list[str]] | None = None
    if "ProjectionExpression" in req:
        text = req["ProjectionExpression"]
        names = [n.strip() for n in text.split(",")] if isinstance(text, str) else []
        if (not names or len(set(names)) != len(names) or not all(
                _NAME.fullmatch(n) and n.upper() not in reserved for n in names)):
            return None
        projection = [[n] for n in names]
    limit = req.get("Limit")
    forward = req.get("ScanIndexForward", True)
    consistent = req.get("ConsistentRead", False)
    if ((limit is not None and (type(limit) is not int or limit < 1))
            or type(forward) is not bool or type(consistent) is not bool):
        return None
    start = req.get("ExclusiveStartKey")
    if start is not None and not _start_key(start, table, value):
        return None
    return _read_partition(table, value, limit, start, forward, projection)


RESULT_SIZE_LIMIT = 1_000_000  # moto's page size: what its items' ``size()`` add up to


def _read_partition(table: IndexedQueryTable, value: dict[str, Any], limit: int | None,
                    start: Any, forward: bool, projection: list[list[str]] | None
                    ) -> bytes | None:
    """A plain Query of one of the twin's tables, walked as moto's ``Table.query`` walks it (a
    page ends at ``limit`` items or before the item that would take it over moto's 1 MB of
    item sizes; ``LastEvaluatedKey`` is then the last item's key) over the partition's kept
    order, without moto's copy of every item, its projection through boto3's type
    (de)serializers and its serializer. None (the request path answers) for an item with a list, a map, a set or a
    binary attribute, or a projected number that is not a plain integer (moto's projection
    rewrites those through ``Decimal``)."""
    ((kind, raw),) = value.items()
    hash_key = DynamoType({kind: raw})
    after = None
    if start is not None:
        after = table.start_value(start) if table.range_key_attr else ...
    names = [path[0] for path in projection] if projection else None
    items: list[dict[str, Any]] = []
    read: list[Any] = []  # the items answered, for the last one's key
    size = 0
    last: Any = None
    for item in table.plain_read(hash_key, limit, after, forward):
        attrs = list(item.attrs.items())  # a copy: another thread may update it
        item_size = 0
        for name, attr in attrs:
            kind = attr.type
            if kind not in _SCALARS:
                return None
            item_size += len(name.encode()) + (
                1 if kind in ("BOOL", "NULL") else len(attr.value) if kind == "N"
                else len(attr.value.encode()))
        if len(items) == limit or size + item_size > RESULT_SIZE_LIMIT:
            if not read:
                return None  # (no item is over 400 KB: moto fails on it, the request path says)
            last = read[-1]
            break
        if names is None:
            items.append({name: {attr.type: attr.value} for name, attr in attrs})
        else:
            got = dict(attrs)
            projected = {}
            for name in names:
                attr = got.get(name)
                if attr is None:
                    continue
                if attr.type == "N" and _INTEGER.fullmatch(attr.value) is None:
                    return None
                projected[name] = {attr.type: attr.value}
            items.append(projected)
        size += item_size
        read.append(item)
    answer: dict[str, Any] = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
    if last is not None:
        key = {table.hash_key_attr: last.hash_key.to_json()}
        if table.range_key_attr and last.range_key is not None:
            key[table.range_key_attr] = last.range_key.to_json()
        answer["LastEvaluatedKey"] = key
    return json.dumps(answer).encode()


def _start_key(start: Any, table: Any, value: dict[str, Any]) -> bool:
    """A start key the plain path takes: the table's key attributes exactly, of their types,
    in the queried partition."""
    types = {table.hash_key_attr: table.hash_key_type}
    if table.range_key_attr:
        types[table.range_key_attr] = table.range_key_type
    return (isinstance(start, dict) and start.keys() == types.keys()
            and start[table.hash_key_attr] == value
            and all(_typed_plain(v, types[k]) for k, v in start.items()))


def _typed_plain(value: Any, kind: str) -> TypeGuard[dict[str, Any]]:
    """``value`` is one attribute value of type ``kind`` (``{"S": "..."}``), a plain one."""
    return (isinstance(value, dict) and len(value) == 1 and kind in value
            and plain_value(kind, value[kind]))


@functools.cache
def _reserved() -> frozenset[str]:
    """DynamoDB's reserved words (moto's list): a name among them needs a placeholder."""
    return frozenset(w.upper() for w in ReservedKeywords.get_reserved_keywords())


_DIRECT: dict[str, Callable[[dict[str, Any]], bytes | None]] = {
    "BatchWriteItem": plain_batch_write, "Query": plain_query}


def _limit_refusal(target: str, req: dict[str, Any]) -> str | None:
    """DynamoDB's message for a Query's or Scan's ``Limit`` below 1, which moto fails on."""
    if target not in (TARGET_PREFIX + "Query", TARGET_PREFIX + "Scan"):
        return None
    limit = req.get("Limit")
    if type(limit) is int and limit < 1:
        return (f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
                "constraint: Member must have value greater than or equal to 1")
    return None


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The request body parsed, once for every check and path here; None if not an object."""
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return req if isinstance(req, dict) else None


def _error(start_response: Callable[..., Any], status: int, code: str, message: str
           ) -> list[bytes]:
    """DynamoDB's JSON error: ``__type`` with its namespace, ``message``, the error type header."""
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                       "message": message}).encode()
    headers = _headers(body, "application/json")
    headers.insert(1, ("X-Amzn-ErrorType", code))
    start_response(f"{status} {_REASONS.get(status, 'ERROR')}", headers)
    return [body]


def _headers(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """The headers moto's DynamoDB handler answers with (its request id: 52 letters and digits;
    its CRC32 of the body, which botocore checks), and the length."""
    return [("Content-Type", content_type), ("server", "amazon.com"),
            ("date", formatdate(usegmt=True)),
            ("x-amzn-requestid", "".join(random.choices(_ID_ALPHABET, k=52))),
            ("x-amz-crc32", str(zlib.crc32(body))), ("Content-Length", str(len(body)))]
