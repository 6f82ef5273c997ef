"""Loading the XTS instrument master: good lines upserted, bad ones reported by number."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from orders.market.instruments import BUNDLED_MASTER, load_instrument_master, parse_master_line
from orders.models import Instrument

pytestmark = pytest.mark.django_db

GOOD_CASH = (
    "NSECM|2885|8|RELIANCE|RELIANCE-EQ|EQ|RELIANCE-EQ|1100100002885|1672.40|1368.40|100000|0.05|1|1"
)
GOOD_FUTURE = (
    "NSEFO|52001|2|NIFTY|NIFTY26DECFUT|FUTIDX|NIFTY-FUTIDX|2000000052001|28765.00|23535.00|1755|"
    "0.05|65|1|-1|NIFTY|2026-12-29T14:30:00|0|-1|NIFTY 29DEC2026"
)


def test_a_file_with_malformed_lines_loads_the_good_ones_and_reports_the_rest(tmp_path, capsys):
    master = tmp_path / "master.txt"
    master.write_text(
        "\n".join(
            [
                GOOD_CASH,
                "NSECM|1594|8|INFY",  # line 2: too few fields
                "XXX|1|8|A|A-EQ|EQ|A-EQ|1|10|5|100|0.05|1",  # line 3: unknown segment
                "NSECM|abc|8|A|A-EQ|EQ|A-EQ|1|10|5|100|0.05|1",  # line 4: bad id
                "NSECM|7|8|B|B-EQ|EQ|B-EQ|1|10|5|100|0.05|0",  # line 5: lot size 0
                "NSECM|8|8|C|C-EQ|EQ|C-EQ|1|5|10|100|0.05|1",  # line 6: band upside down
                GOOD_FUTURE,
            ]
        )
    )
    call_command("load_instruments", str(master))
    out, err = capsys.readouterr()
    assert "2 instruments loaded (2 new, 0 updated), 5 bad lines" in out
    for number in (2, 3, 4, 5, 6):
        assert f"line {number}:" in err
    assert set(Instrument.objects.values_list("trading_symbol", flat=True)) == {
        "RELIANCE",
        "NIFTY26DECFUT",
    }


def test_loading_again_updates_on_segment_and_instrument_id():
    load_instrument_master(lines=[GOOD_CASH])
    summary = load_instrument_master(lines=[GOOD_CASH.replace("|0.05|1|1", "|0.10|1|1")])
    assert (summary.created, summary.updated) == (0, 1)
    assert Instrument.objects.get(exchange_instrument_id=2885).tick_size == Decimal("0.10")


def test_derivative_fields_are_read_leniently():
    future = parse_master_line(GOOD_FUTURE)
    assert (future.lot_size, future.freeze_quantity, future.underlying) == (65, 1755, "NIFTY")
    assert future.expiry.isoformat() == "2026-12-29"
    odd = parse_master_line(GOOD_FUTURE.replace("2026-12-29T14:30:00", "someday"))
    assert odd.expiry is None  # a field after the thirteenth never fails a line
    # Nor an unreadable multiplier ("²" is a digit to str.isdigit, not to int()): it is 1.
    assert parse_master_line(GOOD_CASH.removesuffix("|1") + "|\u00b2").multiplier == 1


def test_the_bundled_master_loads_cleanly():
    with open(BUNDLED_MASTER) as handle:
        summary = load_instrument_master(lines=handle)
    assert summary.errors == [] and summary.created >= 40
    nifty = Instrument.objects.get(trading_symbol="NIFTY26DECFUT")
    assert (nifty.lot_size, nifty.exchange_segment) == (65, "NSEFO")
    assert Instrument.objects.get(trading_symbol="SBIN").tick_size == Decimal("0.05")
