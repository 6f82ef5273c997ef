"""Template filters of the trader desk: Indian number formatting, IST times, PnL colours.

Load with `{% load desk %}`. The same formatting is done in the browser by
`static/js/desk.js` (Intl.NumberFormat('en-IN')), so live updates look like the server's.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.utils import timezone
from django.utils.html import format_html

from trading_site.core.form_keys import FORM_KEY, new_form_key
from trading_site.core.market_hours import MARKET_TZ

register = template.Library()

IST = MARKET_TZ
RUPEE = "\u20b9"


def _to_decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        # str() first: a float must never leak binary noise into money.
        return Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


def group_indian(digits: str) -> str:
    """'1234567' -> '12,34,567': the last three digits, then groups of two (lakh, crore)."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    groups: list[str] = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return ",".join(groups) + "," + tail


def format_indian(value, places: int = 2) -> str:
    """A number in Indian grouping with `places` decimals, e.g. -12,34,567.89; '' for none."""
    number = _to_decimal(value)
    if number is None:
        return ""
    if not number.is_finite():
        return str(number)
    quantum = Decimal(1).scaleb(-places) if places > 0 else Decimal(1)
    rounded = number.quantize(quantum, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    text = f"{abs(rounded):f}"
    whole, _, fraction = text.partition(".")
    result = sign + group_indian(whole)
    if places > 0:
        result += "." + fraction.ljust(places, "0")
    return result


@register.filter(name="indian")
def indian(value, places=2):
    """`{{ qty|indian:0 }}` -> 1,00,000; `{{ price|indian }}` -> 2,450.50."""
    try:
        places = int(places)
    except (TypeError, ValueError):
        places = 2
    return format_indian(value, places)


@register.filter(name="inr")
def inr(value, places=2):
    """`{{ account.cash_available|inr }}` -> ₹12,34,567.89 (minus sign before the rupee)."""
    text = indian(value, places)
    if not text:
        return "\u2014"
    if text.startswith("-"):
        return f"-{RUPEE}{text[1:]}"
    return f"{RUPEE}{text}"


@register.filter(name="ist")
def ist(value, fmt="%d %b %Y %H:%M:%S"):
    """An aware datetime shown in Asia/Kolkata, e.g. '05 Mar 2025 10:15:02'."""
    if not isinstance(value, datetime):
        return "" if value is None else value
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value.astimezone(IST).strftime(fmt)


@register.filter(name="ist_time")
def ist_time(value):
    return ist(value, "%H:%M:%S")


@register.filter(name="pnl_class")
def pnl_class(value):
    """CSS class for a signed amount: 'pos', 'neg' or 'zero'."""
    number = _to_decimal(value)
    if number is None or number == 0:
        return "zero"
    return "pos" if number > 0 else "neg"


@register.filter(name="status_class")
def status_class(value):
    """CSS class for an order / leg / cycle / step status, e.g. 'status-filled'."""
    return "status-" + str(value or "none").lower().replace("_", "-")


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@register.filter(name="weekday_names")
def weekday_names(days) -> str:
    """[0, 1, 2, 3, 4] -> "Mon to Fri"; [0, 2] -> "Mon, Wed"; all seven -> "Every day"
    (0 = Monday, as Python's date.weekday())."""
    try:
        chosen = sorted({int(d) for d in days or [] if 0 <= int(d) <= 6})
    except (TypeError, ValueError):
        return ""
    if not chosen:
        return "No day"
    if chosen == list(range(7)):
        return "Every day"
    if len(chosen) >= 3 and chosen == list(range(chosen[0], chosen[-1] + 1)):
        return f"{_WEEKDAYS[chosen[0]]} to {_WEEKDAYS[chosen[-1]]}"
    return ", ".join(_WEEKDAYS[d] for d in chosen)


@register.simple_tag(takes_context=True)
def form_key_input(context) -> str:
    """The hidden field carrying the rendered form's key: the view's `form_key` (a form
    shown again for confirmation keeps its key), else a fresh one."""
    key = context.get("form_key") or new_form_key()
    return format_html('<input type="hidden" name="{}" value="{}">', FORM_KEY, key)


@register.simple_tag
def money_badge(account) -> str:
    """PAPER or LIVE beside an account wherever it is shown (paper and live money are
    never mixed up)."""
    if account is None:
        return ""
    paper = account.is_paper if hasattr(account, "is_paper") else account == "paper"
    return format_html(
        '<span class="badge money-{}" data-money-badge>{}</span>',
        "paper" if paper else "live",
        "PAPER" if paper else "LIVE",
    )
