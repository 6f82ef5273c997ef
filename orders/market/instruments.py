"""Loading the XTS instrument master (`manage.py load_instruments FILE`).

A master line is `|`-separated: the first thirteen fields by position
(ExchangeSegment|ExchangeInstrumentID|InstrumentType|Name|Description|Series|NameWithSeries|
InstrumentID|PriceBand.High|PriceBand.Low|FreezeQty|TickSize|LotSize), then, leniently,
Multiplier and for derivatives UnderlyingInstrumentId|UnderlyingIndexName|ContractExpiration|
StrikePrice|OptionType|DisplayName. A bad line is reported with its number and skipped; good
lines are upserted on (segment, instrument id).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from orders.models import ExchangeSegment, Instrument

BUNDLED_MASTER = Path(__file__).resolve().parent / "data" / "nse_master_sample.txt"
REQUIRED_FIELDS = 13
_SEGMENTS = set(ExchangeSegment.values)
_OPTION_TYPES = {"3": "CE", "4": "PE", "CE": "CE", "PE": "PE"}
_UPDATE_FIELDS = [
    "instrument_type",
    "trading_symbol",
    "name",
    "description",
    "series",
    "lot_size",
    "tick_size",
    "freeze_quantity",
    "price_band_high",
    "price_band_low",
    "multiplier",
    "underlying",
    "expiry",
    "strike_price",
    "option_type",
    "updated_at",
]


class MasterLineError(ValueError):
    pass


@dataclass
class LoadSummary:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return self.created + self.updated

    def describe(self) -> str:
        return (
            f"{self.loaded} instruments loaded ({self.created} new, {self.updated} updated), "
            f"{len(self.errors)} bad lines"
        )


def _decimal(value: str, name: str, *, positive: bool = False) -> Decimal | None:
    text = value.strip()
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise MasterLineError(f"{name} {text!r} is not a number") from None
    if not number.is_finite() or (positive and number <= 0) or number < 0:
        raise MasterLineError(f"{name} {text!r} is out of range")
    return number


def _int(value: str, name: str, *, positive: bool = False) -> int | None:
    number = _decimal(value, name, positive=positive)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise MasterLineError(f"{name} {value.strip()!r} is not a whole number")
    return int(number)


def _lenient_date(value: str) -> date | None:
    text = value.strip()
    for parse in (
        lambda t: datetime.fromisoformat(t).date(),
        lambda t: datetime.strptime(t, "%d%b%Y").date(),
        lambda t: datetime.strptime(t, "%d-%m-%Y").date(),
    ):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def parse_master_line(line: str) -> Instrument:
    """One master line -> an unsaved Instrument; raises MasterLineError saying what is wrong."""
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < REQUIRED_FIELDS:
        raise MasterLineError(f"expected at least {REQUIRED_FIELDS} fields, found {len(parts)}")
    segment = parts[0].strip().upper()
    if segment not in _SEGMENTS:
        raise MasterLineError(f"unknown exchange segment {parts[0].strip()!r}")
    instrument_id = _int(parts[1], "ExchangeInstrumentID", positive=True)
    if instrument_id is None:
        raise MasterLineError("ExchangeInstrumentID is empty")
    name = parts[3].strip()
    description = parts[4].strip()
    if not name:
        raise MasterLineError("Name is empty")
    high = _decimal(parts[8], "PriceBand.High")
    low = _decimal(parts[9], "PriceBand.Low")
    if high is not None and low is not None and low > high:
        raise MasterLineError(f"price band low {low} is above high {high}")
    tick = _decimal(parts[11], "TickSize", positive=True)
    lot = _int(parts[12], "LotSize", positive=True)
    if tick is None or lot is None:
        raise MasterLineError("TickSize and LotSize are required")
    freeze = _int(parts[10], "FreezeQty")
    extra = [p.strip() for p in parts[REQUIRED_FIELDS:]]

    def lenient(index: int) -> str:
        return extra[index] if len(extra) > index else ""

    multiplier = lenient(0)
    is_derivative = segment.endswith("FO") or segment.endswith("CD")
    strike = None
    try:
        strike = Decimal(lenient(4)) if is_derivative and lenient(4) else None
    except InvalidOperation:
        strike = None
    return Instrument(
        exchange_segment=segment,
        exchange_instrument_id=instrument_id,
        instrument_type=parts[2].strip()[:20],
        # Cash instruments trade under their name (RELIANCE); derivatives under the contract.
        trading_symbol=(description if is_derivative and description else name)[:100],
        name=name[:100],
        description=description[:200],
        series=parts[5].strip()[:20],
        lot_size=lot,
        tick_size=tick,
        freeze_quantity=freeze or None,
        price_band_high=high,
        price_band_low=low,
        # isdecimal, not isdigit: "²" is a digit that int() refuses (the whole load failed).
        multiplier=int(multiplier) if multiplier.isdecimal() and int(multiplier) > 0 else 1,
        underlying=lenient(2)[:100] if is_derivative else "",
        expiry=_lenient_date(lenient(3)) if is_derivative and lenient(3) else None,
        strike_price=strike if strike and strike > 0 else None,
        option_type=_OPTION_TYPES.get(lenient(5).upper(), "") if is_derivative else "",
    )


def format_master_line(instrument: Instrument) -> str:
    """The inverse of parse_master_line (the XTS simulator serves the master this way)."""

    def text(value) -> str:
        return "" if value is None else str(value)

    fields = [
        instrument.exchange_segment,
        str(instrument.exchange_instrument_id),
        instrument.instrument_type,
        instrument.name,
        instrument.description,
        instrument.series,
        f"{instrument.name}-{instrument.series}" if instrument.series else instrument.name,
        str(instrument.exchange_instrument_id),
        text(instrument.price_band_high),
        text(instrument.price_band_low),
        text(instrument.freeze_quantity),
        text(instrument.tick_size),
        str(instrument.lot_size),
        str(instrument.multiplier),
    ]
    if instrument.exchange_segment.endswith(("FO", "CD")):
        fields += [
            "-1",
            instrument.underlying,
            instrument.expiry.isoformat() if instrument.expiry else "",
            text(instrument.strike_price),
            instrument.option_type,
            instrument.description,
        ]
    return "|".join(fields)


def load_instrument_master(*, lines: Iterable[str], batch_size: int = 1000) -> LoadSummary:
    """Parse every line, upsert the good ones, report the bad ones by line number."""
    summary = LoadSummary()
    parsed: dict[tuple[str, int], Instrument] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            instrument = parse_master_line(line)
        except MasterLineError as exc:
            summary.errors.append((number, str(exc)))
            continue
        parsed[(instrument.exchange_segment, instrument.exchange_instrument_id)] = instrument
    if not parsed:
        return summary
    items = list(parsed.values())
    conflict_target: dict[str, Any] = (
        {"unique_fields": ["exchange_segment", "exchange_instrument_id"]}
        if connection.features.supports_update_conflicts_with_target
        else {}
    )
    with transaction.atomic():
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            existing = set(
                Instrument.objects.filter(
                    exchange_instrument_id__in=[i.exchange_instrument_id for i in chunk]
                ).values_list("exchange_segment", "exchange_instrument_id")
            )
            for item in chunk:
                key = (item.exchange_segment, item.exchange_instrument_id)
                if key in existing:
                    summary.updated += 1
                else:
                    summary.created += 1
            Instrument.objects.bulk_create(
                chunk, update_conflicts=True, update_fields=_UPDATE_FIELDS, **conflict_target
            )
    return summary


def load_instrument_file(path: str | Path) -> LoadSummary:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return load_instrument_master(lines=handle)


def load_bundled_instruments() -> LoadSummary:
    return load_instrument_file(BUNDLED_MASTER)
