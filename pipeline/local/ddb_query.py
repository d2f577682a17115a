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
makes.

A partition is handed over already in moto's order, kept per partition (:class:`_Order`: built on
its first query, then updated by the table's ``put_item`` and ``delete_item``, through which
every write of moto's goes), so moto's sort of it is one pass. A query with a ``Limit`` and no
range key condition is handed only the ``Limit`` + 1 items after its ``ExclusiveStartKey``
(found by bisection): DynamoDB reads at most ``Limit`` items for it, so a presence read of a
room's first 101 members costs the same in a room of 100,000. Measured on the AWS port, a
``Limit`` 101 Query of a 10,000-item partition: 71 ms of the twin's CPU before, 30 ms after, the
rest moto's serialization of the 101 items it answers (~0.25 ms an item), which the port's plain
Query skips (:mod:`.dynamodb_port`, through :meth:`IndexedQueryTable.plain_read`): 0.9 ms.

``tests/local/test_ddb_query.py`` checks the answers equal moto's own for randomized tables, key
conditions, indexes, pages and directions, between writes (puts, replacements, deletes,
transactions kept and rolled back), that the narrowing is really used, and that a ``Limit``
query compares about ``Limit`` keys, not the partition's.
"""

from __future__ import annotations

import copy
import inspect
import threading
from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_QUERY = inspect.signature(Table.query)
_narrowing = threading.local()  # .table: the table whose query is running; .items: what it reads
_orders_lock = threading.Lock()  # makes each table's order map (tables are converted in place)
_first = itemgetter(0)


class _Order:
    """One partition's items in moto's query order: by the range key's ``cast_value`` (what
    ``DynamoType.__lt__`` compares: a str, a Decimal or the binary value), with those values
    beside them for bisection, compared in C instead of through ``DynamoType``."""

    __slots__ = ("items", "keys")

    def __init__(self, items: Any) -> None:
        pairs = sorted(((item.range_key.cast_value, item) for item in items), key=_first)
        self.keys = [key for key, _ in pairs]
        self.items = [item for _, item in pairs]

    def find(self, key: Any) -> tuple[int, bool]:
        """Where ``key`` is (True) or would go (False)."""
        i = bisect_left(self.keys, key)
        return i, i < len(self.keys) and self.keys[i] == key


class IndexedQueryTable(Table):
    """A moto ``Table`` whose ``query`` reads one partition (see the module docstring)."""

    def query(self, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        bound = _QUERY.bind(self, hash_key, *args, **kwargs).arguments
        _narrowing.items = self._read(hash_key, bound)
        _narrowing.table = self
        try:
            return super().query(hash_key, *args, **kwargs)
        finally:
            _narrowing.table = None
            _narrowing.items = None

    def all_items(self) -> list[Any]:
        if getattr(_narrowing, "table", None) is not self:
            return super().all_items()
        _narrowing.table = None  # only the query's own (first) call is narrowed
        items: list[Any] = _narrowing.items
        return items

    # --- what a query reads ----------------------------------------------------------------
    def _read(self, hash_key: Any, bound: dict[str, Any]) -> list[Any]:
        if bound.get("index_name"):  # an index: query filters and sorts by the index's keys
            return [item for group in self.items.values()
                    for item in (group.values() if self.range_key_attr else (group,))]
        group = self.items.get(hash_key)
        if group is None:
            return []
        if not self.range_key_attr:
            return [group]
        limit = bound.get("limit")
        if (type(limit) is not int or limit < 1 or bound.get("range_comparison")
                or bound.get("range_key_conditions") or bound.get("filter_kwargs")):
            limit = None  # moto's loop may skip items: it gets the whole partition
        esk = bound.get("exclusive_start_key")
        after = self.start_value(esk) if esk and limit is not None else None
        if esk and after is None:
            limit = None  # a start key moto compares its own way
        with self._lock():
            return _span(self._order_of(hash_key, group), limit, after,
                         bound.get("scan_index_forward") is not False)

    def plain_read(self, hash_key: Any, limit: int | None, start: Any, forward: bool
                   ) -> list[Any]:
        """The items moto's query loop walks for a query of the partition with no range key
        condition and no filter, in the query's direction: after the start key (``start``: its
        range value as :meth:`start_value` gives it; ``...``: a start key of a table without a
        range key, which skips the partition's one item) and at most ``limit`` + 1 of them."""
        group = self.items.get(hash_key)
        if group is None:
            return []
        if not self.range_key_attr:
            return [] if start is not None else [group]
        with self._lock():
            window = _span(self._order_of(hash_key, group), limit, start, forward)
        if not forward:
            window.reverse()
        return window

    def start_value(self, esk: Any) -> Any:
        """The start key's range value as the orders' keys hold it, or None when it is not a
        value of the range key's type (moto then compares as it does)."""
        value = esk.get(self.range_key_attr) if isinstance(esk, dict) else None
        if not isinstance(value, dict) or len(value) != 1:
            return None
        (kind,) = value
        if kind != self.range_key_type or kind not in ("S", "N", "B"):
            return None
        try:
            return DynamoType(value).cast_value
        except Exception:  # a malformed number: moto answers it
            return None

    def _order_of(self, hash_key: Any, group: Any) -> _Order:
        """The partition's kept order (the caller holds the lock), built when it has none or
        holds another number of items than the partition (a write in between)."""
        order = self._orders().get(hash_key)
        if order is None or len(order.items) != len(group):
            order = self._orders()[hash_key] = _Order(group.values())
        return order

    # --- keeping the orders: every write of moto's table goes through these two --------------
    def put_item(self, *args: Any, **kwargs: Any) -> Any:
        item: Any = super().put_item(*args, **kwargs)
        if self.range_key_attr:
            with self._lock():
                order = self._orders().get(item.hash_key)
                if order is not None:
                    i, found = order.find(item.range_key.cast_value)
                    if found:
                        order.items[i] = item  # replaced: same key, the new item
                    else:
                        order.keys.insert(i, item.range_key.cast_value)
                        order.items.insert(i, item)
        return item

    def delete_item(self, *args: Any, **kwargs: Any) -> Any:
        item: Any = super().delete_item(*args, **kwargs)
        if item is not None and self.range_key_attr:
            with self._lock():
                orders = self._orders()
                order = orders.get(item.hash_key)
                if order is not None:
                    i, found = order.find(item.range_key.cast_value)
                    if found:
                        del order.keys[i], order.items[i]
                    if not order.items:
                        del orders[item.hash_key]
        return item

    def __deepcopy__(self, memo: dict[int, Any]) -> IndexedQueryTable:
        """moto copies a whole table before a TransactWriteItems (and puts the copy back if it
        fails): the copy is the table's state without its orders and lock (they are rebuilt on
        its first query), as ``copy.deepcopy`` copies any other object."""
        twin = object.__new__(type(self))
        memo[id(self)] = twin
        for name, value in self.__dict__.items():
            if name not in ("_twin_orders", "_twin_lock"):
                twin.__dict__[name] = copy.deepcopy(value, memo)
        return twin

    def _orders(self) -> dict[Any, _Order]:
        orders: dict[Any, _Order] | None = self.__dict__.get("_twin_orders")
        if orders is None:
            with _orders_lock:
                orders = self.__dict__.setdefault("_twin_orders", {})
        return orders

    def _lock(self) -> threading.RLock:
        lock: threading.RLock | None = self.__dict__.get("_twin_lock")
        if lock is None:
            with _orders_lock:
                lock = self.__dict__.setdefault("_twin_lock", threading.RLock())
        return lock


def _span(order: _Order, limit: int | None, after: Any, forward: bool) -> list[Any]:
    """The partition in ascending order after the start value ``after`` (None: from the
    start) in the query's direction, and with a ``limit`` only the ``limit`` + 1 items nearest
    it: the extra one is what makes moto set ``LastEvaluatedKey``, as it would on the whole.
    moto skips what is at or before the start key, whichever the direction."""
    lo, hi = 0, len(order.items)
    if after is not None:
        if forward:
            lo = bisect_right(order.keys, after)
        else:
            hi = bisect_left(order.keys, after)
    if limit is None:
        return order.items[lo:hi]
    if forward:
        return order.items[lo:min(hi, lo + limit + 1)]
    return order.items[max(lo, hi - limit - 1):hi]


def index_queries(table: Table) -> IndexedQueryTable:
    """Make the provisioned *table* an :class:`IndexedQueryTable` (same state, same identity)."""
    if not isinstance(table, IndexedQueryTable):
        if type(table) is not Table:
            raise TypeError(f"not a plain moto Table: {type(table).__name__}")
        table.__class__ = IndexedQueryTable  # type: ignore[type-abstract]
    return table  # type: ignore[return-value]
