"""The audit trail in a trader's words: each event kind as a sentence, who did it as a name
("you", a username, "Monitoring loop") instead of "user:12", and the stored message with our
internal terms ("written ahead") replaced. Display only: the stored events are untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from accounts.models import User
from orders.domain.vocabulary import EventKind
from orders.models import OrderEvent

ACTORS = {
    "monitoring": "Monitoring loop",
    "scheduler": "Scheduler",
    "system": "The desk",
    "regeneration": "Regeneration",
    "recompute_pnl": "PnL recompute (operator)",
}

# {role} is the leg's role in lower case ("entry", "stop-loss", "take-profit", "exit").
SENTENCES: dict[str, str] = {
    EventKind.ORDER_CREATED: "Order saved, before anything was sent to the broker",
    EventKind.LEG_ACCEPTED: "The broker accepted the {role} leg",
    EventKind.LEG_REJECTED: "The broker rejected the {role} leg",
    EventKind.LEG_SUBMIT_UNKNOWN: "The broker did not answer for the {role} leg; the next sync settles it",
    EventKind.LEG_RECONCILED: "The {role} leg was found in the broker's order book",
    EventKind.LEG_UNCONFIRMED: "The {role} leg was not found at the broker",
    EventKind.LEG_SYNCED: "The {role} leg changed at the broker",
    EventKind.ORDER_STATUS: "The order's status changed",
    EventKind.ARCHIVED: "Rejected order archived",
    EventKind.KILL_SWITCH: "Kill switch: cancel everything and square off",
    EventKind.KILL_SWITCH_CANCEL: "Kill switch cancelled the {role} leg",
    EventKind.KILL_SWITCH_PROTECTION_KEPT: "Kill switch could not square this position off: "
    "its stop-loss and targets stay working",
    EventKind.KILL_SWITCH_COMPLETED: "Kill switch: everything cancelled and squared off",
    EventKind.KILL_SWITCH_INCOMPLETE: "Kill switch: not everything could be done",
    EventKind.EXIT_CREATED: "An exit leg was created to close the position",
    EventKind.EXIT_REDUCED: "The {role} leg was reduced to what is still open",
    EventKind.EXIT_CANCELLED: "The {role} leg was cancelled: nothing left to close",
    EventKind.EXIT_REDUCE_FAILED: "The {role} leg could not be reduced",
    EventKind.EXIT_REFUSED: "The exit was refused: the stop-loss and targets are placed again",
    EventKind.EXIT_SIZED_TO_BROKER: "The broker held less of the position than the desk: "
    "its exits, stop-loss and targets cover only what the broker holds",
    EventKind.LATE_FILL: "The entry filled after the exit was asked for: the fill is squared "
    "off at once",
    EventKind.LEG_MODIFIED: "The {role} leg was modified",
    EventKind.LEG_REPRICED: "The {role} leg was re-priced to the fair price",
    EventKind.LEG_CANCELLED: "The {role} leg was cancelled",
    EventKind.LEG_MODIFIED_FAILED: "The {role} leg could not be modified",
    EventKind.LEG_REPRICED_FAILED: "The {role} leg could not be re-priced",
    EventKind.LEG_CANCELLED_FAILED: "The {role} leg could not be cancelled",
    EventKind.KILL_SWITCH_CANCEL_FAILED: "Kill switch could not cancel the {role} leg",
    EventKind.POSITION_EXIT_CANCEL_FAILED: "The {role} leg could not be cancelled for the "
    "position exit",
    EventKind.ILLEGAL_TRANSITION: "A change the {role} leg cannot make was refused, not applied",
    EventKind.POSITION_EXIT: "Exit of the position: its open legs are cancelled first",
    EventKind.POSITION_EXIT_CANCEL: "The {role} leg was cancelled for the position exit",
    EventKind.POSITION_EXIT_PROTECTION_KEPT: "The exit could not square this position off: "
    "its stop-loss and targets stay working",
    EventKind.POSITIONS_EXIT_REQUESTED: "Exit of positions requested",
    EventKind.POSITIONS_EXIT_SENT: "Exit orders sent",
    EventKind.POSITIONS_EXIT_INCOMPLETE: "Exit orders sent, with problems",
    EventKind.POSITIONS_EXIT_FAILED: "Exit not sent",
    EventKind.TRADING_LOCKED: "Trading locked by the kill switch: no new orders until you "
    "re-enable it",
    EventKind.TRADING_UNLOCKED: "Trading re-enabled: new orders are accepted again",
    EventKind.KEY_RELEASED: "Not sent to the broker: the order's idempotency key was released "
    "so a retry places it",
    EventKind.SCHEDULE_CREATED: "Scheduled order created: it places this order on its days",
    EventKind.SCHEDULE_CHANGED: "Scheduled order changed",
    EventKind.SCHEDULE_DELETED: "Scheduled order deleted: it places no more orders",
    EventKind.STRATEGY_CREATED: "Strategy created",
    EventKind.STRATEGY_CHANGED: "Strategy settings changed",
    EventKind.STRATEGY_DELETED: "Strategy deleted",
    EventKind.REGENERATE_PERMISSION_CHANGED: "Permission to re-place rejected entries changed",
    EventKind.WEBHOOK_CREATED: "Alert webhook created: alerts sent to it place orders",
    EventKind.WEBHOOK_CHANGED: "Alert webhook changed",
    EventKind.WEBHOOK_SECRET_ROTATED: "Alert webhook secret rotated: the old URL and secret "
    "now get 404",
    EventKind.PNL_DAY_RECOMPUTED: "The day's PnL was recomputed from the stored trades",
    EventKind.BROKERAGE_PLAN_CHANGED: "Brokerage plan changed: the PnL's estimated charges "
    "follow it",
}

# Our internal words -> a trader's.
GLOSSARY = [
    (re.compile(r"\bwritten ahead\b"), "saved before sending"),
    (re.compile(r"\(MANUAL\)"), "(placed by hand)"),
    (re.compile(r"\(ALGO\)"), "(API)"),
    (re.compile(r"\(BATCH\)"), "(batch)"),
    (re.compile(r"\(SCHEDULED\)"), "(scheduled)"),
    (re.compile(r"\(REGENERATED\)"), "(regenerated)"),
    (re.compile(r"\(KILL_SWITCH\)"), "(kill switch)"),
    (re.compile(r"\bSTOP_LOSS\b"), "stop-loss"),
    (re.compile(r"\bENTRY\b"), "entry"),
    (re.compile(r"\bEXIT\b"), "exit"),
    (re.compile(r"\bBUY\b"), "buy"),
    (re.compile(r"\bSELL\b"), "sell"),
    (re.compile(r"\bTAKE_PROFIT\b"), "take-profit"),
    (re.compile(r"\bBRACKET\b"), "Bracket"),
    (re.compile(r"\bSINGLE\b"), "Single"),
]


def plain_message(message: str) -> str:
    for pattern, words in GLOSSARY:
        message = pattern.sub(words, message)
    return message


def sentence(kind: str, *, role: str = "") -> str:
    role_words = role.replace("_", "-").lower() if role else "order's"
    failed = kind.endswith("_failed") and kind not in SENTENCES
    base = kind[: -len("_failed")] if failed else kind
    template = SENTENCES.get(base)
    if template is None:
        text = base.replace("_", " ").capitalize()
    else:
        text = template.format(role=role_words)
    return f"{text}: it failed" if failed else text


def _user_ids(actors: Iterable[str]) -> set[int]:
    ids = set()
    for actor in actors:
        prefix, _, rest = actor.partition(":")
        if prefix in ("user", "admin") and rest.isdigit():
            ids.add(int(rest))
    return ids


def actor_names(actors: Iterable[str], *, viewer) -> dict[str, str]:
    """Each actor string -> the words to show (one query for the users named)."""
    actors = set(actors)
    names = dict(User.objects.filter(pk__in=_user_ids(actors)).values_list("pk", "username"))
    shown = {}
    for actor in actors:
        prefix, _, rest = actor.partition(":")
        if prefix in ("user", "admin") and rest.isdigit():
            pk = int(rest)
            if viewer is not None and pk == viewer.pk:
                shown[actor] = "You"
            else:
                name = names.get(pk, f"user {pk}")
                shown[actor] = f"Admin {name}" if prefix == "admin" else name
        else:
            shown[actor] = ACTORS.get(actor, actor.replace("_", " ").capitalize())
    return shown


def describe_events(events: list[OrderEvent], *, viewer) -> list[OrderEvent]:
    """Sets `sentence`, `by` and `plain` on each event for the page."""
    names = actor_names((event.actor for event in events), viewer=viewer)
    for event in events:
        role = event.leg.role if event.leg_id and event.leg is not None else ""
        event.sentence = sentence(event.kind, role=role)
        event.by = names.get(event.actor, event.actor)
        event.plain = plain_message(event.message)
    return events
