"""Signals of market data: upper layers (pnl: live MTM) react to new prices without the
orders app knowing them."""

from django.dispatch import Signal

# Sent after a fair-price write commits (and after the paper exchange matched on it), with
# `instrument_ids`: the primary keys of the instruments whose prices were written.
fair_prices_recorded = Signal()
