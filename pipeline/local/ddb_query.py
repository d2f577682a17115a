"""DynamoDB Query on the twin's tables at the cost of the partition read, not of the whole table.

moto's ``Table.query`` starts from ``all_items()``: every item of the table, sorted by primary
key with a Python-level comparison per pair, and only then keeps the queried partition. On a
roster of 3,000 items (1,000 members of one room) a Query of one connection's items took 16 ms
and a Query of the ``byPrincipal`` index 28 ms, against 1.3 ms on an empty table: a storm of
1,000 disconnects (one Query each) took ~53 s to leave the roster. DynamoDB reads one partition
for a Query (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.html), so
its cost does not grow with the table.

The tables the twin provisions from the template are :class:`IndexedQueryTable`, a subclass of
moto's ``Table`` (moto is pinned exactly, see :mod:`pipeline.local.patches`; nothing of moto's
own classes is changed): while its own ``query`` runs, its ``all_items()`` answers
- a query of the table: the items of the queried partition only (moto's table holds them in a
  dict per hash key, ``items``); ``query`` keeps exactly these and sorts them by range key;
- a query of an index: every item, unsorted (``query`` filters on the index's key conditions,
  then sorts the matches by the index's keys and the table's primary key, a total order, so the
  order it was handed them in does not matter).
Every other caller (Scan, exports, PartiQL) gets moto's sorted list. The narrowing is per thread
(the AWS port serves requests on several) and lasts for the one ``all_items()`` call ``query``
makes. ``tests/local/test_ddb_query.py`` checks the answers equal moto's own for randomized
tables, key conditions, indexes, pages and directions, and that the narrowing is really used.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from moto.dynamodb.models.table import Table

_QUERY = inspect.signature(Table.query)
_narrowing = threading.local()  # .table: the table whose query is running; .partition: its hash key


class IndexedQueryTable(Table):
    """A moto ``Table`` whose ``query`` reads one partition (see the module docstring)."""

    def query(self, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = _QUERY.bind(self, hash_key, *args, **kwargs).arguments.get("index_name")
        _narrowing.table = self
        _narrowing.partition = None if index_name else hash_key
        try:
            return super().query(hash_key, *args, **kwargs)
        finally:
            _narrowing.table = None

    def all_items(self) -> list[Any]:
        if getattr(_narrowing, "table", None) is not self:
            return super().all_items()
        _narrowing.table = None  # only the query's own (first) call is narrowed
        partition = _narrowing.partition
        if partition is None:  # an index: query filters and sorts by the index's keys itself
            return [item for group in self.items.values()
                    for item in (group.values() if self.range_key_attr else (group,))]
        group = self.items.get(partition)
        if group is None:
            return []
        return list(group.values()) if self.range_key_attr else [group]


def index_queries(table: Table) -> IndexedQueryTable:
    """Make the provisioned *table* an :class:`IndexedQueryTable` (same state, same identity)."""
    if not isinstance(table, IndexedQueryTable):
        if type(table) is not Table:
            raise TypeError(f"not a plain moto Table: {type(table).__name__}")
        table.__class__ = IndexedQueryTable  # type: ignore[type-abstract]
    return table  # type: ignore[return-value]
