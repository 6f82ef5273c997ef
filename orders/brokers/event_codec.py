"""BrokerEvents as JSON, for the trip through Redis (the paper exchange's events in the full
stack): Decimals as strings (exact), datetimes in ISO 8601 with their offset."""

from __future__ import annotations

import json
import typing
from collections.abc import Hashable
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, cast

import orjson

from orders.brokers.base import BrokerOrderRow, BrokerPositionRow, BrokerTradeRow
from orders.brokers.events import BrokerEvent, BrokerEventKind

_ROWS = {"order": BrokerOrderRow, "trade": BrokerTradeRow, "position": BrokerPositionRow}


class UnreadableEvent(ValueError):
    """Not a BrokerEvent this version can read."""


def _row_dict(row) -> dict[str, Any]:
    """The row's fields, Decimals as their text and datetimes in ISO 8601 (checked in this
    loop: a batch encodes 500 rows of 23 fields)."""
    data: dict[str, Any] = {}
    for name in _field_names(cast(Hashable, type(row))):
        value = getattr(row, name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        data[name] = value
    return data


@cache
def _field_names(row_class) -> tuple[str, ...]:
    """A row dataclass's field names, read once (a batch encodes 500 rows of one class)."""
    return tuple(f.name for f in fields(row_class))


# json.dumps(data, separators=(",", ":")) without a new encoder per call (500 a batch).
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def _row_value(value: Any) -> str:
    """orjson's `default` for a row's fields: what `_row_dict` writes for its two types."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a row's value")


def encode_event(event: BrokerEvent) -> str:
    """The event's JSON: `_row_dict` of each row in an object, written by orjson, which
    walks the row dataclass's fields in their order itself (a batch encodes 500 rows, at
    less than half the CPU of the standard library's encoder and `_row_dict`'s loop). The
    same object: orjson writes non-ASCII text as UTF-8 where the standard library escapes
    it, which reads back the same. What orjson cannot write (an integer beyond 64 bits, a
    lone surrogate) goes the standard library's way."""
    data: dict[str, Any] = {
        "account_id": event.account_id,
        "kind": str(event.kind),
        "source": event.source,
        "received_at": event.received_at.isoformat(),
        "detail": event.detail,
    }
    for name in _ROWS:
        row = getattr(event, name)
        if row is not None:
            data[name] = row
    try:
        return orjson.dumps(
            data, default=_row_value, option=orjson.OPT_PASSTHROUGH_DATETIME
        ).decode()
    except orjson.JSONEncodeError:
        for name in _ROWS:
            if name in data:
                data[name] = _row_dict(data[name])
        return _compact_json(data)


@cache
def _field_types(row_class) -> dict[str, Any]:
    return typing.get_type_hints(row_class)


def _read(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    options = typing.get_args(kind) or (kind,)
    if Decimal in options:
        return Decimal(str(value))
    if datetime in options:
        return datetime.fromisoformat(value)
    if int in options:
        return int(value)
    return value


def _row(row_class, data: dict[str, Any]):
    types = _field_types(row_class)
    return row_class(**{name: _read(value, types[name]) for name, value in data.items()})


def decode_event(text: str | bytes) -> BrokerEvent:
    try:
        data = json.loads(text)
        rows = {
            name: _row(row_class, data[name]) if data.get(name) is not None else None
            for name, row_class in _ROWS.items()
        }
        return BrokerEvent(
            account_id=int(data["account_id"]),
            kind=BrokerEventKind(data["kind"]),
            source=str(data["source"]),
            received_at=datetime.fromisoformat(data["received_at"]),
            detail=str(data.get("detail") or ""),
            **rows,
        )
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise UnreadableEvent(f"not a broker event: {exc}") from exc
