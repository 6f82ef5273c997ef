"""The order vocabulary the pure domain code speaks: order kinds and statuses, leg roles and
statuses, as plain string enums (no Django).

The values are the ones stored in the database (orders.models' choices; a test pins that
they match), so a member compares equal to the model's choice and to the stored string.
"""

from __future__ import annotations

from enum import StrEnum


class OrderKind(StrEnum):
    SINGLE = "SINGLE"
    BRACKET = "BRACKET"


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


class LegRole(StrEnum):
    ENTRY = "ENTRY"
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    EXIT = "EXIT"


class LegStatus(StrEnum):
    PENDING_SUBMIT = "PENDING_SUBMIT"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"
