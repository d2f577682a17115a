"""The twin's tables answer Query exactly as moto's do, reading only the queried partition.

Differential: two tables with the same schema and the same randomized items, one moto's own
``Table`` and one made an :class:`IndexedQueryTable`; every query (table and indexes, key
conditions, filters, projections, pages, both directions) must give the same pages through boto3.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.backends import get_backend
from moto.dynamodb.models.table import Table

from pipeline.aws.limits import ACCOUNT_ID, REGION
from pipeline.local.ddb_query import IndexedQueryTable, index_queries

PLAIN, INDEXED = "plain", "indexed"
ROOMS = ["lobby", "ops", "r-1", "zz"]


def _schema(name: str, *, range_key: bool = True) -> dict[str, Any]:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": "S"},
             {"AttributeName": "principal", "AttributeType": "S"},
             {"AttributeName": "n", "AttributeType": "N"}]
    spec: dict[str, Any] = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                            "GlobalSecondaryIndexes": [
                                {"IndexName": "byPrincipal", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "principal", "KeyType": "HASH"}]},
                                {"IndexName": "byPrincipalN",
                                 "Projection": {"ProjectionType": "KEYS_ONLY"},
                                 "KeySchema": [{"AttributeName": "principal", "KeyType": "HASH"},
                                               {"AttributeName": "n", "KeyType": "RANGE"}]}]}
    if range_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": "S"})
        spec["LocalSecondaryIndexes"] = [
            {"IndexName": "byN", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "n", "KeyType": "RANGE"}]}]
    return {**spec, "KeySchema": keys, "AttributeDefinitions": attrs}


def _items(rng: random.Random, *, range_key: bool) -> list[dict[str, Any]]:
    items = []
    for i in range(400):
        pk = f"ROOM#{rng.choice(ROOMS)}" if range_key else f"CONN#{i:03d}"
        item: dict[str, Any] = {"pk": {"S": pk}, "text": {"S": "x" * rng.randrange(0, 40)}}
        if range_key:
            item["sk"] = {"S": f"CONN#{rng.randrange(10_000):05d}"}
        if rng.random() < 0.8:  # some items are not in the indexes
            item["principal"] = {"S": f"user-{rng.randrange(12)}"}
        if rng.random() < 0.7:
            item["n"] = {"N": str(rng.randrange(-50, 50))}
        items.append(item)
    rng.shuffle(items)
    return items


def _queries() -> Iterator[dict[str, Any]]:
    for room in [*ROOMS, "missing"]:
        p = {":p": {"S": f"ROOM#{room}"}}
        yield {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": p}
        yield {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": p,
               "ScanIndexForward": False, "Limit": 7}
        yield {"KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
               "ExpressionAttributeValues": {**p, ":s": {"S": "CONN#0"}}, "Limit": 5}
        yield {"KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
               "ExpressionAttributeValues": {**p, ":a": {"S": "CONN#02"}, ":b": {"S": "CONN#06"}}}
        yield {"KeyConditionExpression": "pk = :p AND sk > :a", "Select": "COUNT",
               "ExpressionAttributeValues": {**p, ":a": {"S": "CONN#05"}}, "ConsistentRead": True}
        yield {"KeyConditionExpression": "pk = :p", "FilterExpression": "attribute_exists(n)",
               "ProjectionExpression": "sk, n", "ExpressionAttributeValues": p, "Limit": 9}
        yield {"IndexName": "byN", "KeyConditionExpression": "pk = :p AND n >= :z",
               "ExpressionAttributeValues": {**p, ":z": {"N": "0"}}, "Limit": 6}
    for user in ["user-0", "user-5", "user-11", "nobody"]:
        u = {":u": {"S": user}}
        yield {"IndexName": "byPrincipal", "KeyConditionExpression": "principal = :u",
               "ExpressionAttributeValues": u}
        yield {"IndexName": "byPrincipal", "KeyConditionExpression": "principal = :u",
               "ExpressionAttributeValues": u, "Limit": 4, "ScanIndexForward": False}
        yield {"IndexName": "byPrincipalN", "KeyConditionExpression": "principal = :u AND n < :z",
               "ExpressionAttributeValues": {**u, ":z": {"N": "10"}}, "Limit": 3}


def _pages(ddb: Any, table: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    pages, start = [], None
    for _ in range(500):  # bounded: 400 items, pages of at least 3
        kwargs = {**query, "TableName": table, **({"ExclusiveStartKey": start} if start else {})}
        page = ddb.query(**kwargs)
        pages.append({k: page.get(k) for k in ("Items", "Count", "ScannedCount",
                                                "LastEvaluatedKey")})
        start = page.get("LastEvaluatedKey")
        if start is None:
            return pages
    raise AssertionError("query never ended")


@pytest.fixture()
def ddb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION, aws_access_key_id="t",
                           aws_secret_access_key="t")


def _twin_tables(ddb: Any, *, range_key: bool, seed: int) -> None:
    for name in (PLAIN, INDEXED):
        ddb.create_table(**_schema(name, range_key=range_key))
    for item in _items(random.Random(seed), range_key=range_key):
        for name in (PLAIN, INDEXED):
            ddb.put_item(TableName=name, Item=item)
    index_queries(get_backend("dynamodb")[ACCOUNT_ID][REGION].get_table(INDEXED))


@pytest.mark.parametrize("seed", [1, 2])
def test_every_query_of_a_table_with_a_range_key_answers_as_moto_does(ddb: Any, seed: int) -> None:
    _twin_tables(ddb, range_key=True, seed=seed)
    checked = 0
    for query in _queries():
        if not query["ExpressionAttributeValues"].get(":p", {"S": "ROOM#"})["S"].startswith("ROOM#"):
            continue
        expected = _pages(ddb, PLAIN, query)
        assert _pages(ddb, INDEXED, query) == expected, query
        checked += sum(len(p["Items"] or []) for p in expected)
    assert checked > 400  # the queries did return items (the battery is not vacuous)


def test_a_table_without_a_range_key_answers_as_moto_does(ddb: Any) -> None:
    _twin_tables(ddb, range_key=False, seed=3)
    queries = [{"KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": f"CONN#{i:03d}"}}} for i in (0, 7, 399, 400)]
    queries += [q for q in _queries() if q.get("IndexName", "").startswith("byPrincipal")]
    for query in queries:
        assert _pages(ddb, INDEXED, query) == _pages(ddb, PLAIN, query), query


def test_a_query_reads_the_partition_not_the_sorted_table(
        ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _twin_tables(ddb, range_key=True, seed=4)
    full_reads = []
    original = Table.all_items

    def counted(self: Table) -> list[Any]:
        full_reads.append(self.name)
        return original(self)

    monkeypatch.setattr(Table, "all_items", counted)
    room = {":p": {"S": "ROOM#ops"}}
    got = ddb.query(TableName=INDEXED, KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues=room)["Items"]
    ddb.query(TableName=INDEXED, IndexName="byPrincipal", KeyConditionExpression="principal = :u",
              ExpressionAttributeValues={":u": {"S": "user-1"}})
    assert got and full_reads == []  # neither query sorted the whole table
    ddb.query(TableName=PLAIN, KeyConditionExpression="pk = :p", ExpressionAttributeValues=room)
    assert full_reads == [PLAIN]  # moto's own table still does (the probe works)
    full_reads.clear()
    assert ddb.scan(TableName=INDEXED)["Items"] == ddb.scan(TableName=PLAIN)["Items"]
    assert full_reads == [INDEXED, PLAIN]  # a Scan is moto's own: whole table, sorted


def test_only_a_plain_moto_table_is_converted(ddb: Any) -> None:
    ddb.create_table(**_schema(PLAIN))
    table = get_backend("dynamodb")[ACCOUNT_ID][REGION].get_table(PLAIN)
    assert index_queries(table) is table and isinstance(table, IndexedQueryTable)
    assert index_queries(table) is table  # twice is harmless
    with pytest.raises(TypeError):
        index_queries(object())  # type: ignore[arg-type]


def test_queries_between_writes_answer_as_moto_does(ddb: Any) -> None:
    """Puts (new and replacing), deletes, transactions (kept and rolled back) between queries:
    the partitions' kept order follows every write."""
    _twin_tables(ddb, range_key=True, seed=5)
    rng = random.Random(6)
    queries = [q for q in _queries() if "IndexName" not in q]
    seen = set()
    for step in range(30):
        room = f"ROOM#{rng.choice(ROOMS)}"
        sk = {"S": f"CONN#{rng.randrange(10_000):05d}"}
        kind = rng.choice(["put", "put", "replace", "delete", "transact", "transact-fails"])
        seen.add(kind)
        for name in (PLAIN, INDEXED):
            if kind in ("put", "replace"):
                existing = ddb.query(TableName=name, KeyConditionExpression="pk = :p",
                                     ExpressionAttributeValues={":p": {"S": room}}, Limit=1)
                key = existing["Items"][0]["sk"] if kind == "replace" and existing["Items"] else sk
                ddb.put_item(TableName=name, Item={"pk": {"S": room}, "sk": key,
                                                   "text": {"S": f"v{step}"}})
            elif kind == "delete":
                page = ddb.query(TableName=name, KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues={":p": {"S": room}},
                                 ScanIndexForward=False, Limit=2)["Items"]
                for item in page[:1]:
                    ddb.delete_item(TableName=name, Key={"pk": item["pk"], "sk": item["sk"]})
            else:
                fails = kind == "transact-fails"
                items = [{"Put": {"TableName": name, "Item": {"pk": {"S": room}, "sk": sk}}},
                         {"ConditionCheck": {"TableName": name, "ConditionExpression":
                                             "attribute_exists(pk)" if fails else
                                             "attribute_not_exists(pk)",
                                             "Key": {"pk": {"S": "ROOM#none"}, "sk": sk}}}]
                try:
                    ddb.transact_write_items(TransactItems=items)
                except ddb.exceptions.TransactionCanceledException:
                    assert fails
        query = rng.choice(queries)
        assert _pages(ddb, INDEXED, query) == _pages(ddb, PLAIN, query), (step, kind, query)
    assert seen == {"put", "replace", "delete", "transact", "transact-fails"}  # every kind ran


def test_a_query_with_a_limit_reads_about_the_limit_not_the_partition(
        ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    for name in (PLAIN, INDEXED):
        ddb.create_table(**_schema(name))
    backend = get_backend("dynamodb")[ACCOUNT_ID][REGION]
    index_queries(backend.get_table(INDEXED))
    for name in (PLAIN, INDEXED):
        for i in range(2000):
            backend.put_item(name, {"pk": {"S": "ROOM#big"}, "sk": {"S": f"CONN#{i:05d}"}})
    room = {":p": {"S": "ROOM#big"}}
    ddb.query(TableName=INDEXED, KeyConditionExpression="pk = :p", ExpressionAttributeValues=room)
    compared = []
    original = DynamoType.__lt__

    def counted(self: DynamoType, other: DynamoType) -> bool:
        compared.append(1)
        return original(self, other)

    monkeypatch.setattr(DynamoType, "__lt__", counted)
    pages = {}
    for name in (PLAIN, INDEXED):
        compared.clear()
        pages[name] = [ddb.query(TableName=name, KeyConditionExpression="pk = :p", Limit=101,
                                 ExpressionAttributeValues=room, ScanIndexForward=forward)
                       for forward in (True, False)]
        pages[name] += [ddb.query(TableName=name, KeyConditionExpression="pk = :p", Limit=101,
                                  ExpressionAttributeValues=room,
                                  ExclusiveStartKey=pages[name][0]["LastEvaluatedKey"])]
        pages[name].append(len(compared))
    plain_compared, indexed_compared = pages[PLAIN].pop(), pages[INDEXED].pop()
    for ours, theirs in zip(pages[INDEXED], pages[PLAIN], strict=True):
        assert {k: ours.get(k) for k in ("Items", "Count", "LastEvaluatedKey")} == {
            k: theirs.get(k) for k in ("Items", "Count", "LastEvaluatedKey")}
    assert plain_compared > 3 * 2000  # moto sorts the partition, each time
    assert indexed_compared < 3 * 2 * 102  # the window of each page, not the partition
