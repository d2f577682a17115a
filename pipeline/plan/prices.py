"""The price list the planner uses: ``prices.json``, one entry per billed unit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.plan import PlanError, read_json

PRICES_FILE = Path(__file__).with_name("prices.json")

# Every key the model bills; the file must have them all (a missing one is a refresh gone wrong).
REQUIRED = (
    "apiGatewayMessagesFirstBillion", "apiGatewayMessagesOverBillion",
    "apiGatewayConnectionMinutes", "kinesisShardHour", "kinesisPutPayloadUnits",
    "kinesisEfoConsumerShardHour", "kinesisEfoDataGb", "kinesisOnDemandStreamHour",
    "kinesisOnDemandDataInGb", "kinesisOnDemandEfoDataGb", "lambdaRequests", "lambdaArmGbSecond",
    "dynamodbWriteRequestUnits", "dynamodbReadRequestUnits", "sqsRequests",
    "cloudwatchLogsIngestGb",
)  # fmt: skip


@dataclass(frozen=True)
class Price:
    """``usd`` for every ``per`` units of ``unit``, read from ``source`` on ``read_on``."""

    key: str
    usd: float
    per: int
    unit: str
    source: str
    read_on: str

    @property
    def unit_usd(self) -> float:
        """The price of one unit."""
        return self.usd / self.per


@dataclass(frozen=True)
class PriceList:
    """All prices of one region, as read from the data file."""

    region: str
    read_on: str
    prices: dict[str, Price]

    def __getitem__(self, key: str) -> Price:
        return self.prices[key]


def load_prices(path: Path = PRICES_FILE) -> PriceList:
    """Read and check a prices file (every required key, a source URL and a date on each)."""
    raw = read_json(path, "prices")
    entries = raw.get("prices") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise PlanError(f"{path}: needs a 'prices' object")
    missing = [k for k in REQUIRED if k not in entries]
    if missing:
        raise PlanError(f"{path}: missing prices {missing}")
    prices: dict[str, Price] = {}
    for key, e in entries.items():
        if not isinstance(e, dict):
            raise PlanError(f"{path}: price {key!r} must be an object")
        usd, per, source, read_on = e.get("usd"), e.get("per"), e.get("source"), e.get("readOn")
        if not isinstance(usd, int | float) or isinstance(usd, bool) or usd < 0:
            raise PlanError(f"{path}: price {key!r}: usd must be a number >= 0")
        if not isinstance(per, int) or per < 1:
            raise PlanError(f"{path}: price {key!r}: per must be a positive integer")
        if not isinstance(source, str) or not source.startswith("https://aws.amazon.com/"):
            raise PlanError(f"{path}: price {key!r}: source must be an https://aws.amazon.com/ URL")
        if not isinstance(read_on, str) or len(read_on) != 10:
            raise PlanError(f"{path}: price {key!r}: readOn must be a YYYY-MM-DD date")
        prices[key] = Price(key, float(usd), per, str(e.get("unit", "")), source, read_on)
    return PriceList(str(raw.get("region", "")), str(raw.get("readOn", "")), prices)
