"""Estimated Indian trading charges of executed orders. Pure: no Django.

Every statutory rate lives in DEFAULT_RATES below, with where it comes from; settings can
override any of them (`CHARGE_RATES`, read by pnl.intraday) when a rate changes, without a
release. Brokerage is the trader's own per-account plan (pnl.models.BrokeragePlanSetting).

Per executed order (all its fills together), on its turnover (price x quantity x multiplier;
for options the premium):
- brokerage: flat per order, or a percentage capped per order (zero on delivery if the plan
  says so);
- STT (securities transaction tax) on the side(s) the law taxes;
- exchange transaction charges (NSE or BSE);
- SEBI turnover fee;
- stamp duty, on the buy side only;
- GST at 18 % on brokerage + exchange charges + SEBI fee (not on STT or stamp duty).
Each component is rounded to the paisa per order, and GST is taken on the rounded lines, as a
contract note prints them. Clearing charges, NSE's IPFT and DP charges on delivery sells are
left out (a few rupees per crore, or per scrip per day): these are estimates; the broker's
contract note is the record.

Segments: equity delivery (CNC) and intraday (everything else in the cash segment), futures
and options on NSE/BSE F&O. Currency and commodity segments are not estimated (None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from decimal import ROUND_HALF_UP, Decimal

from orders.domain.ticket import EQUITY, FUTURES, OPTIONS
from orders.domain.vocabulary import ProductType, Side

CENTS = Decimal("0.01")
ZERO = Decimal("0")

EQUITY_DELIVERY = "EQUITY_DELIVERY"
EQUITY_INTRADAY = "EQUITY_INTRADAY"
SEGMENTS = (EQUITY_DELIVERY, EQUITY_INTRADAY, FUTURES, OPTIONS)


@dataclass(frozen=True)
class SegmentRates:
    """Fractions of turnover (0.001 = 0.1 %)."""

    stt_buy: Decimal
    stt_sell: Decimal
    stamp_buy: Decimal
    exchange_nse: Decimal
    exchange_bse: Decimal


@dataclass(frozen=True)
class ChargeRates:
    segments: Mapping[str, SegmentRates]
    sebi_fee: Decimal
    gst: Decimal


# Each segment's rates as fractions of turnover, in SegmentRates' field order:
# (stt_buy, stt_sell, stamp_buy, exchange_nse, exchange_bse).
# STT: Finance (No. 2) Act 2004, Chapter VII, s. 98, as amended by the Finance (No. 2) Act 2024
# from 1 October 2024: delivery 0.1 % on buy and sell; intraday 0.025 % on the sell; futures
# 0.02 % on the sell; options 0.1 % of the premium on the sell.
# Stamp duty: Indian Stamp Act 1899 as amended by the Finance Act 2019, in force from 1 July
# 2020 (Notification S.O. 4419(E)), collected on the buyer only: delivery 0.015 %, intraday
# 0.003 %, futures 0.002 %, options 0.003 % of the premium.
# Exchange transaction charges: the flat, uniform rates of NSE and BSE in force from 1 October
# 2024 (SEBI circular SEBI/HO/MRD/TPD-1/P/CIR/2024/116 on true-to-label charges, and the
# exchanges' circulars following it): NSE cash 0.00297 %, futures 0.00173 %, options
# 0.03503 % of the premium; BSE cash 0.00375 %, futures 0, options 0.0325 % of the premium.
_SEGMENT_RATES = {
    EQUITY_DELIVERY: ("0.001", "0.001", "0.00015", "0.0000297", "0.0000375"),
    EQUITY_INTRADAY: ("0", "0.00025", "0.00003", "0.0000297", "0.0000375"),
    FUTURES: ("0", "0.0002", "0.00002", "0.0000173", "0"),
    OPTIONS: ("0", "0.001", "0.00003", "0.0003503", "0.000325"),
}

DEFAULT_RATES = ChargeRates(
    segments={
        segment: SegmentRates(*(Decimal(rate) for rate in rates))
        for segment, rates in _SEGMENT_RATES.items()
    },
    # SEBI turnover fee: Rs 10 per crore (SEBI (Regulatory Fee on Stock Exchanges)
    # Regulations 2006, Schedule, as revised from 1 June 2021).
    sebi_fee=Decimal("0.000001"),
    # GST: 18 % on the broker's and the exchange's services (SAC 9971, IGST Act 2017).
    gst=Decimal("0.18"),
)


class RatesError(ValueError):
    """An override names a segment or rate that does not exist, or is not a number."""


def rates_with(overrides: Mapping | None, base: ChargeRates = DEFAULT_RATES) -> ChargeRates:
    """`base` with overrides such as {"EQUITY_INTRADAY": {"stt_sell": "0.00025"},
    "gst": "0.18"} (fractions, as strings or numbers)."""
    if not overrides:
        return base
    segments = dict(base.segments)
    top: dict[str, Decimal] = {}
    rate_names = {f.name for f in fields(SegmentRates)}
    for key, value in overrides.items():
        if key in ("sebi_fee", "gst"):
            top[key] = _fraction(key, value)
        elif key in segments and isinstance(value, Mapping):
            unknown = set(value) - rate_names
            if unknown:
                raise RatesError(f"{key}: unknown rate(s) {sorted(unknown)}")
            segments[key] = replace(
                segments[key], **{name: _fraction(f"{key}.{name}", v) for name, v in value.items()}
            )
        else:
            raise RatesError(f"unknown charge rate {key!r}")
    return replace(base, segments=segments, **top)


def _fraction(name: str, value) -> Decimal:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise RatesError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0 or number >= 1:
        raise RatesError(f"{name}: {value!r} must be a fraction from 0 to below 1")
    return number


@dataclass(frozen=True)
class BrokeragePlan:
    """FLAT: `flat_per_order` rupees per executed order. PERCENT: `percent` % of the order's
    turnover, at most `cap_per_order` rupees (no cap when None)."""

    mode: str = "FLAT"
    flat_per_order: Decimal = Decimal("20")
    percent: Decimal = Decimal("0.03")
    cap_per_order: Decimal | None = Decimal("20")
    delivery_free: bool = False

    def brokerage(self, *, turnover: Decimal, delivery: bool) -> Decimal:
        if delivery and self.delivery_free:
            return ZERO
        if self.mode == "PERCENT":
            amount = turnover * self.percent / 100
            if self.cap_per_order is not None:
                amount = min(amount, self.cap_per_order)
            return amount
        return self.flat_per_order


@dataclass(frozen=True)
class ExecutedOrder:
    """One executed order: all its fills (same instrument, side and product)."""

    instrument_class: str  # orders.domain.ticket: EQUITY, FUTURES, OPTIONS, OTHER
    exchange: str  # "NSE" or "BSE"
    side: str  # "BUY" or "SELL"
    product: str  # "MIS", "NRML", "CNC"
    turnover: Decimal


@dataclass(frozen=True)
class Charges:
    brokerage: Decimal = ZERO
    stt: Decimal = ZERO
    exchange: Decimal = ZERO
    sebi: Decimal = ZERO
    stamp: Decimal = ZERO
    gst: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.brokerage + self.stt + self.exchange + self.sebi + self.stamp + self.gst

    def __add__(self, other: Charges) -> Charges:
        return Charges(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


def _paise(value: Decimal) -> Decimal:
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


def segment_of(order: ExecutedOrder) -> str | None:
    if order.instrument_class == EQUITY:
        return EQUITY_DELIVERY if order.product == ProductType.CNC else EQUITY_INTRADAY
    if order.instrument_class in (FUTURES, OPTIONS):
        return order.instrument_class
    return None


def charges_of(
    order: ExecutedOrder, *, plan: BrokeragePlan, rates: ChargeRates = DEFAULT_RATES
) -> Charges | None:
    """The estimated charges of one executed order; None for a segment not estimated."""
    segment = segment_of(order)
    if segment is None:
        return None
    rate = rates.segments[segment]
    turnover = order.turnover
    buy = order.side == Side.BUY
    brokerage = _paise(plan.brokerage(turnover=turnover, delivery=segment == EQUITY_DELIVERY))
    stt = _paise(turnover * (rate.stt_buy if buy else rate.stt_sell))
    exchange_rate = rate.exchange_bse if order.exchange == "BSE" else rate.exchange_nse
    exchange = _paise(turnover * exchange_rate)
    sebi = _paise(turnover * rates.sebi_fee)
    stamp = _paise(turnover * rate.stamp_buy) if buy else ZERO
    gst = _paise((brokerage + exchange + sebi) * rates.gst)
    return Charges(brokerage=brokerage, stt=stt, exchange=exchange, sebi=sebi, stamp=stamp, gst=gst)


@dataclass(frozen=True)
class ChargesSummary:
    charges: Charges
    orders: int  # executed orders estimated
    not_estimated: int  # executed orders in segments this module does not estimate


def total_charges(
    orders: Iterable[ExecutedOrder], *, plan: BrokeragePlan, rates: ChargeRates = DEFAULT_RATES
) -> ChargesSummary:
    total = Charges()
    counted = skipped = 0
    for order in orders:
        charges = charges_of(order, plan=plan, rates=rates)
        if charges is None:
            skipped += 1
        else:
            total += charges
            counted += 1
    return ChargesSummary(charges=total, orders=counted, not_estimated=skipped)
