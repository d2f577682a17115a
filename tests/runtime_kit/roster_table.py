"""The roster table as the stack declares it and the items the ``$connect`` VTL writes."""

from __future__ import annotations

from typing import Any

TABLE = "WebSocketPipeline-dev-Roster"


def create_roster_table(ddb: Any) -> None:
    """The stack's table: ``pk``/``sk`` keys and the sparse ``byPrincipal`` index."""
    ddb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"},
                              {"AttributeName": "principalKey", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{  # the stack's sparse byPrincipal index
            "IndexName": "byPrincipal",
            "KeySchema": [{"AttributeName": "principalKey", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}],
    )


def put_meta(ddb: Any, cid: str, principal: str = "") -> None:
    """The META item the $connect VTL writes (``principalKey`` only when authenticated)."""
    item = {
        "pk": {"S": f"CONN#{cid}"}, "sk": {"S": "META"}, "connectionId": {"S": cid},
        "connectedAt": {"N": "1700000000000"}, "sourceIp": {"S": "203.0.113.7"},
        "principal": {"S": principal}, "expiresAt": {"N": "1700010800"}}
    if principal:
        item["principalKey"] = {"S": principal}
    ddb.put_item(TableName=TABLE, Item=item)


def all_items(ddb: Any) -> list[tuple[str, str]]:
    """Every item's ``(pk, sk)``, sorted."""
    items = ddb.scan(TableName=TABLE)["Items"]
    return sorted((i["pk"]["S"], i["sk"]["S"]) for i in items)
