"""The audit trail in a trader's words: each event kind as a sentence, who did it as a name
("you", a username, "Monitoring loop") instead of "user:12", and the stored message with our
internal terms ("written ahead") replaced. Display only: the stored events are untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from accounts.models import User
from orders.models import OrderEvent

ACTORS = {
    "monitoring": "Monitoring loop",
    "scheduler": "Scheduler",
    "system": "The desk",
    "regeneration": "Regeneration",
}

# {role} is the leg's role in lower case ("entry", "stop-loss", "take-profit", "exit").
SENTENCES = {
    "order_created": "Order saved, before anything was sent to the broker",
    "leg_accepted": "The broker accepted the {role} leg",
    "leg_rejected": "The broker rejected the {role} leg",
    "leg_submit_unknown": "The broker did not answer for the {role} leg; the next sync settles it",
    "leg_reconciled": "The {role} leg was found in the broker's order book",
    "leg_unconfirmed": "The {role} leg was not found at the broker",
    "leg_synced": "The {role} leg changed at the broker",
    "order_status": "The order's status changed",
    "archived": "Rejected order archived",
    "kill_switch": "Kill switch: cancel everything and square off",
    "kill_switch_cancel": "Kill switch cancelled the {role} leg",
    "exit_created": "An exit leg was created to close the position",
    "exit_reduced": "The {role} leg was reduced to what is still open",
    "exit_cancelled": "The {role} leg was cancelled: nothing left to close",
    "exit_reduce_failed": "The {role} leg could not be reduced",
    "leg_modified": "The {role} leg was modified",
    "leg_repriced": "The {role} leg was re-priced to the fair price",
    "leg_cancelled": "The {role} leg was cancelled",
    "position_exit": "Exit of the position: its open legs are cancelled first",
    "position_exit_cancel": "The {role} leg was cancelled for the position exit",
    "positions_exit_requested": "Exit of positions requested",
    "positions_exit_sent": "Exit orders sent",
    "positions_exit_incomplete": "Exit orders sent, with problems",
    "positions_exit_failed": "Exit not sent",
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
