"""Order unique identifiers: how the broker's order book is matched back to our legs.

An identifier is `<n><account><yymmdd><sequence>` in upper-case base 36, where `<n>` is the
length of the account part. The length prefix makes the encoding injective (no two
(account, date, sequence) triples share a string), so identifiers are unique across accounts
and days without any coordination beyond the per-account daily counter. An account id below
36**4 (1.6 million) and a sequence below 36**8 fit XTS's 20 characters with room to spare.
"""

from __future__ import annotations

from datetime import date

MAX_IDENTIFIER_LENGTH = 20
# The longest external_id (the caller's own name for an order: a batch item's, a webhook's, an
# OpenAlgo strategy's) kept on an order; the API refuses a longer one.
MAX_EXTERNAL_ID_LENGTH = 64
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def to_base36(value: int) -> str:
    if value < 0:
        raise ValueError("base 36 encoding needs a non-negative integer")
    if value == 0:
        return "0"
    out = []
    while value:
        value, rem = divmod(value, 36)
        out.append(_DIGITS[rem])
    return "".join(reversed(out))


def format_identifier(*, account_id: int, trading_date: date, sequence: int) -> str:
    account_part = to_base36(account_id)
    if len(account_part) > 9:
        raise ValueError(f"account id {account_id} is too large for an order identifier")
    identifier = f"{len(account_part)}{account_part}{trading_date:%y%m%d}{to_base36(sequence)}"
    if len(identifier) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"identifier {identifier!r} exceeds {MAX_IDENTIFIER_LENGTH} characters")
    return identifier


def parse_identifier(identifier: str) -> tuple[int, date, int]:
    """The inverse of `format_identifier` (for the admin and for tests of uniqueness)."""
    width = int(identifier[0])
    account_id = int(identifier[1 : 1 + width], 36)
    stamp = identifier[1 + width : 7 + width]
    trading_date = date(2000 + int(stamp[:2]), int(stamp[2:4]), int(stamp[4:6]))
    return account_id, trading_date, int(identifier[7 + width :], 36)
