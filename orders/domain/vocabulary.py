"""The order vocabulary, defined once: sides, order and product types, exchange segments,
order kinds and statuses, leg roles and statuses, and the kinds of audit event.

Plain string enums (no Django): the models use them as their choices (`OrderLeg.Status` IS
`LegStatus`), the gateways, the paper exchange and the XTS wire mapping speak them, and a
member compares equal to the stored string. Each class reads like Django's TextChoices
(`.choices`, `.values`, `.labels`, `member.label`) so a model field, a form or a
serializer takes it as it is; the labels are the ones the migrations hold.
"""

from __future__ import annotations

from enum import EnumType, StrEnum, nonmember


class _VocabularyType(EnumType):
    """What Django's ChoicesType offers, without Django: the (value, label) pairs and the
    membership test by value."""

    def __contains__(cls, value: object) -> bool:
        if isinstance(value, str):
            return value in cls._value2member_map_
        return super().__contains__(value)

    def _members(cls) -> list[Vocabulary]:
        members: list[Vocabulary] = list(cls)
        return members

    @property
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.label) for member in cls._members()]

    @property
    def values(cls) -> list[str]:
        return [member.value for member in cls._members()]

    @property
    def labels(cls) -> list[str]:
        return [member.label for member in cls._members()]

    @property
    def names(cls) -> list[str]:
        return [member.name for member in cls._members()]


class Vocabulary(StrEnum, metaclass=_VocabularyType):
    """A member is `NAME = "VALUE", "Label"` (or only the value: the label is then the
    value in title case, as Django derives it from the name, which is the value here)."""

    label: str

    def __new__(cls, value: str, label: str | None = None) -> Vocabulary:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label if label is not None else value.replace("_", " ").title()
        return member

    # A template must not call an enum it is handed (Django's Choices say the same).
    do_not_call_in_templates = nonmember(True)

    def __str__(self) -> str:
        return str(self.value)

    # Equal to its stored string, so it hashes as that string (Enum hashes the name); str's
    # own slot, not a Python function calling it (members are dict keys in every batch).
    __hash__ = str.__hash__


# ---- what an order asks for ------------------------------------------------------------


class Side(Vocabulary):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"


class OrderType(Vocabulary):
    MARKET = "MARKET", "Market"
    LIMIT = "LIMIT", "Limit"
    STOPLIMIT = "STOPLIMIT", "Stop-limit"
    STOPMARKET = "STOPMARKET", "Stop-market"


STOP_ORDER_TYPES = (OrderType.STOPLIMIT, OrderType.STOPMARKET)


class ProductType(Vocabulary):
    MIS = "MIS", "MIS (intraday)"
    NRML = "NRML", "NRML (carry forward)"
    CNC = "CNC", "CNC (delivery)"


class ExchangeSegment(Vocabulary):
    NSECM = "NSECM"
    NSEFO = "NSEFO"
    NSECD = "NSECD"
    BSECM = "BSECM"
    BSEFO = "BSEFO"
    MCXFO = "MCXFO"


class OrderKind(Vocabulary):
    SINGLE = "SINGLE", "Single"
    BRACKET = "BRACKET", "Bracket"


# ---- where an order stands --------------------------------------------------------------


class OrderStatus(Vocabulary):
    """An order's status: derived from its legs (orders.domain.rollup), never set by hand."""

    PENDING = "PENDING", "Pending submit"  # written ahead, broker not yet answered
    OPEN = "OPEN", "Open"  # accepted by the broker, nothing filled
    PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
    FILLED = "FILLED", "Filled"  # entry filled; a bracket's position is open
    COMPLETED = "COMPLETED", "Completed"  # a bracket's position closed by its exits
    CANCELLED = "CANCELLED", "Cancelled"
    REJECTED = "REJECTED", "Rejected"


class LegRole(Vocabulary):
    ENTRY = "ENTRY", "Entry"
    STOP_LOSS = "STOP_LOSS", "Stop-loss"
    TAKE_PROFIT = "TAKE_PROFIT", "Take-profit"
    EXIT = "EXIT", "Exit"


EXIT_ROLES = (LegRole.STOP_LOSS, LegRole.TAKE_PROFIT, LegRole.EXIT)


class LegStatus(Vocabulary):
    """A leg's status, which is also a broker order's status in our vocabulary (gateways
    map the broker's words onto it; the paper exchange's orders use its broker statuses).
    Only orders.domain.lifecycle decides how a leg moves between them."""

    PENDING_SUBMIT = "PENDING_SUBMIT", "Pending submit"
    OPEN = "OPEN", "Open"
    PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
    FILLED = "FILLED", "Filled"
    CANCELLED = "CANCELLED", "Cancelled"
    REJECTED = "REJECTED", "Rejected"
    UNKNOWN = "UNKNOWN", "Unknown"


# A leg still working (or about to) at the broker.
OPEN_LEG_STATUSES = (LegStatus.PENDING_SUBMIT, LegStatus.OPEN, LegStatus.PARTIALLY_FILLED)
# A leg nothing moves any more (but a late fill: orders.domain.lifecycle).
FINAL_LEG_STATUSES = (LegStatus.FILLED, LegStatus.CANCELLED, LegStatus.REJECTED)
# The statuses a broker order can have at a venue (the paper exchange's orders).
VENUE_ORDER_STATUSES = (
    LegStatus.OPEN,
    LegStatus.PARTIALLY_FILLED,
    LegStatus.FILLED,
    LegStatus.CANCELLED,
    LegStatus.REJECTED,
)


# ---- the audit trail ----------------------------------------------------------------------

# In a `leg_modified` row's after: the trader gave the leg's limit (their own price from then
# on, even one equal to the working, re-priced, one it replaced); absent when they gave none.
LIMIT_GIVEN = "limit_given"


class EventKind(Vocabulary):
    """What an OrderEvent records (OrderEvent.kind): every state change and every broker
    call outcome has one of these, and nothing else."""

    # An order is written ahead (placement, kill-switch exits).
    ORDER_CREATED = "order_created", "Order created"
    # The order's derived status or filled quantity moved (orders.domain.rollup).
    ORDER_STATUS = "order_status", "Order status changed"
    # A rejected order was archived (monitoring step 7).
    ARCHIVED = "archived", "Archived"
    # The broker's answer to a new leg: accepted, refused, or no answer (left pending).
    LEG_ACCEPTED = "leg_accepted", "Leg accepted"
    LEG_REJECTED = "leg_rejected", "Leg rejected"
    LEG_SUBMIT_UNKNOWN = "leg_submit_unknown", "Leg submission outcome unknown"
    # The broker's order book moved a leg (monitoring step 3).
    LEG_SYNCED = "leg_synced", "Leg synced"
    # A pending leg found in the book, or not found after the grace period.
    LEG_RECONCILED = "leg_reconciled", "Pending leg reconciled"
    LEG_UNCONFIRMED = "leg_unconfirmed", "Pending leg never confirmed"
    # Changes the trader (or the loop) asked for, and their failures.
    LEG_MODIFIED = "leg_modified", "Leg modified"
    LEG_MODIFIED_FAILED = "leg_modified_failed", "Leg modification failed"
    LEG_REPRICED = "leg_repriced", "Leg re-priced"
    LEG_REPRICED_FAILED = "leg_repriced_failed", "Leg re-pricing failed"
    LEG_CANCELLED = "leg_cancelled", "Leg cancelled"
    LEG_CANCELLED_FAILED = "leg_cancelled_failed", "Leg cancellation failed"
    # Protection (monitoring step 4): exits written ahead, reduced or cancelled (OCO).
    EXIT_CREATED = "exit_created", "Exit leg created"
    EXIT_REDUCED = "exit_reduced", "Exit leg reduced"
    EXIT_CANCELLED = "exit_cancelled", "Exit leg cancelled"
    EXIT_REDUCE_FAILED = "exit_reduce_failed", "Exit leg reduction failed"
    # An exit asked for (kill switch, position exit) was refused: step 4 protects it again.
    EXIT_REFUSED = "exit_refused", "Exit refused, protected again"
    # An exit path (kill switch, position exit or change) found the broker holding less of a
    # bracket's position than the desk: its exits and protection are sized to the broker's.
    EXIT_SIZED_TO_BROKER = "exit_sized_to_broker", "Exit and protection sized to the broker"
    # An exit-requested bracket's entry (one the exit could not cancel) filled later: step 4
    # squares the fill off at once (orders.services.late_fills).
    LATE_FILL = "late_fill", "Entry filled after the exit was asked for"
    # The kill switch: the order marked, each working leg's cancellation and its failure.
    KILL_SWITCH = "kill_switch", "Kill switch"
    KILL_SWITCH_CANCEL = "kill_switch_cancel", "Kill switch cancelled a leg"
    KILL_SWITCH_CANCEL_FAILED = "kill_switch_cancel_failed", "Kill switch cancellation failed"
    # A bracket whose position the kill switch did not square off: its stop-loss and targets
    # kept (never cancelled) or placed again at once; and the kill switch's outcome, whole or
    # in part, for the account.
    KILL_SWITCH_PROTECTION_KEPT = (
        "kill_switch_protection_kept",
        "Kill switch left the position protected",
    )
    KILL_SWITCH_COMPLETED = "kill_switch_completed", "Kill switch done"
    KILL_SWITCH_INCOMPLETE = "kill_switch_incomplete", "Kill switch done in part"
    # The account's trading lock (orders.services.trading_lock): set by the kill switch,
    # lifted by the trader.
    TRADING_LOCKED = "trading_locked", "Trading locked"
    TRADING_UNLOCKED = "trading_unlocked", "Trading re-enabled"
    # An order that provably never reached the broker gave its Idempotency-Key back, so a
    # retry with the key places it anew.
    KEY_RELEASED = "key_released", "Idempotency key released (not sent)"
    # A move the leg lifecycle refused (orders.domain.lifecycle): recorded, never applied.
    ILLEGAL_TRANSITION = "illegal_transition", "Illegal transition refused"
    # A trader's exit of positions (orders.positions.services): the brackets holding them
    # marked, their working legs cancelled (or not), and the account-level outcome.
    POSITION_EXIT = "position_exit", "Position exit"
    POSITION_EXIT_CANCEL = "position_exit_cancel", "Position exit cancelled a leg"
    POSITION_EXIT_CANCEL_FAILED = "position_exit_cancel_failed", "Position exit cancellation failed"
    # A bracket whose position the exit did not square off: its stop-loss and targets kept
    # (never cancelled) or placed again at once, as the kill switch's.
    POSITION_EXIT_PROTECTION_KEPT = (
        "position_exit_protection_kept",
        "Position exit left the position protected",
    )
    POSITIONS_EXIT_REQUESTED = "positions_exit_requested", "Exit of positions requested"
    POSITIONS_EXIT_SENT = "positions_exit_sent", "Exit orders sent"
    POSITIONS_EXIT_INCOMPLETE = "positions_exit_incomplete", "Exit orders sent, with problems"
    POSITIONS_EXIT_FAILED = "positions_exit_failed", "Exit not sent"
    # What the desk will do with the trader's money unasked, set up, changed or removed (who
    # did it; the settings before and after): a scheduled order and a strategy's alert webhook
    # (on their account), a strategy's automation and the entry-regenerate permission (the
    # user's, of no account).
    SCHEDULE_CREATED = "schedule_created", "Scheduled order created"
    SCHEDULE_CHANGED = "schedule_changed", "Scheduled order changed"
    SCHEDULE_DELETED = "schedule_deleted", "Scheduled order deleted"
    STRATEGY_CREATED = "strategy_created", "Strategy created"
    STRATEGY_CHANGED = "strategy_changed", "Strategy changed"
    STRATEGY_DELETED = "strategy_deleted", "Strategy deleted"
    REGENERATE_PERMISSION_CHANGED = (
        "regenerate_permission_changed",
        "Entry-regenerate permission changed",
    )
    WEBHOOK_CREATED = "webhook_created", "Alert webhook created"
    WEBHOOK_CHANGED = "webhook_changed", "Alert webhook changed"
    WEBHOOK_SECRET_ROTATED = "webhook_secret_rotated", "Alert webhook secret rotated"
    # A past day's stored PnL corrected by an operator's recompute from the stored trades
    # (pnl.services.recompute_past_days): the day's figures before and after.
    PNL_DAY_RECOMPUTED = "pnl_day_recomputed", "Daily PnL recomputed"
    # The account's brokerage plan (pnl.services.save_brokerage_plan: the estimated charges
    # of its PnL) changed by the trader or an admin, or deleted in the admin (the default
    # plan after it: pnl.services.delete_brokerage_plan): who did it, the plan before and after.
    BROKERAGE_PLAN_CHANGED = "brokerage_plan_changed", "Brokerage plan changed"
