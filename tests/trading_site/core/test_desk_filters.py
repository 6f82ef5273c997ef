"""The Indian number formatting and IST filters the templates use."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from trading_site.core.templatetags.desk import format_indian, group_indian, inr, ist, pnl_class


@pytest.mark.parametrize(
    ("digits", "grouped"),
    [
        ("0", "0"),
        ("999", "999"),
        ("1000", "1,000"),
        ("100000", "1,00,000"),
        ("1234567", "12,34,567"),
        ("123456789", "12,34,56,789"),
    ],
)
def test_group_indian_uses_lakh_and_crore_grouping(digits, grouped):
    assert group_indian(digits) == grouped


def test_format_indian_rounds_half_up_to_two_places():
    assert format_indian(Decimal("1234567.885")) == "12,34,567.89"


def test_format_indian_keeps_the_sign_of_losses():
    assert format_indian(Decimal("-100000.5")) == "-1,00,000.50"


def test_format_indian_with_zero_places_is_a_whole_number():
    assert format_indian(150000, 0) == "1,50,000"


def test_inr_puts_the_minus_sign_before_the_rupee():
    assert inr(Decimal("-2500")) == "-\u20b92,500.00"
    assert inr("12345678.9") == "\u20b91,23,45,678.90"


def test_inr_of_nothing_is_a_dash():
    assert inr(None) == "\u2014"


def test_ist_shows_times_in_asia_kolkata():
    assert ist(datetime(2025, 3, 5, 4, 0, tzinfo=UTC)) == "05 Mar 2025 09:30:00"


def test_pnl_class_colours_by_sign():
    assert [pnl_class(v) for v in ("-1", "0", "2.5", None)] == ["neg", "zero", "pos", "zero"]
