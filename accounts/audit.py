"""Who did it, for the audit trail (OrderEvent.actor), and the audit rows of a trader's
strategies and entry-regenerate permission: what the desk may do with their money unasked
(re-place rejected entries, trail a stop-loss, re-price within a slippage bound).

The trail is orders' OrderEvent, and accounts sits below orders in the layers: a change made
here is recorded by the function named in settings (USER_AUDIT_RECORDER, orders'
`record_user_event`), the way the broker layer hands its events up (BROKER_EVENT_HANDLER).
It runs inside the caller's transaction, so a change and its row commit together or not at
all; a recorder that does not import refuses the change rather than make it unrecorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.module_loading import import_string

from accounts.models import EntryRegeneratePermission, Strategy, User

# The kinds of these rows: values of orders' EventKind (the one vocabulary, which accounts may
# not import); the recorder refuses a kind that is not one of them.
STRATEGY_CREATED = "strategy_created"
STRATEGY_CHANGED = "strategy_changed"
STRATEGY_DELETED = "strategy_deleted"
REGENERATE_PERMISSION_CHANGED = "regenerate_permission_changed"


def user_actor(user: User) -> str:
    """The trader (or a program with their token or key) did it."""
    return f"user:{user.pk}"


def admin_actor(user: User) -> str:
    """Staff did it in the admin."""
    return f"admin:{user.pk}"


def _record(
    user_id: int,
    kind: str,
    actor: str,
    message: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """One audit row of the user's, of no account; called inside the change's transaction."""
    recorder = import_string(settings.USER_AUDIT_RECORDER)
    recorder(user_id=user_id, kind=kind, actor=actor, message=message, before=before, after=after)


def change_words(before: dict[str, Any] | None, after: dict[str, Any]) -> str | None:
    """What a save did, for its audit message: "created" (no `before`), "changed (a, b)"
    (the fields that differ), or None when nothing did."""
    if before is None:
        return "created"
    changed = [name for name in after if before.get(name) != after[name]]
    return f"changed ({', '.join(changed)})" if changed else None


def field_values(row: models.Model, names: Iterable[str]) -> dict[str, Any]:
    """A row's fields `names` as an audit row's before/after keeps them: amounts as text at
    the places they are stored with (a form's 0.5 and the stored 0.5000 are one value)."""
    state: dict[str, Any] = {}
    for name in names:
        value = getattr(row, name)
        field = row._meta.get_field(name)
        if isinstance(field, models.DecimalField) and value is not None:
            value = str(Decimal(value).quantize(Decimal(1).scaleb(-field.decimal_places)))
        state[name] = value
    return state


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """The audited view of a strategy (before/after): its id and settings."""
    return {"id": strategy.pk, **field_values(strategy, Strategy.SETTINGS)}


def record_strategy_saved(*, strategy: Strategy, before: dict[str, Any] | None, actor: str) -> None:
    """The audit row of a strategy just saved: created (`before` None) or changed from
    `before` (as the writer read it ahead of the change); none when no setting changed."""
    after = strategy_state(strategy)
    words = change_words(before, after)
    if words is None:
        return
    kind = STRATEGY_CREATED if before is None else STRATEGY_CHANGED
    _record(strategy.user_id, kind, actor, f"strategy “{strategy.name}” {words}", before, after)


def record_strategy_deleted(*, strategy: Strategy, actor: str) -> None:
    """The audit row of a strategy about to be deleted: what it was."""
    message = f"strategy “{strategy.name}” deleted"
    _record(strategy.user_id, STRATEGY_DELETED, actor, message, strategy_state(strategy), None)


def permission_state(permission: EntryRegeneratePermission) -> dict[str, Any]:
    """The audited view of the permission: on or off, and the strategies it covers."""
    covered = permission.strategies.order_by("pk").values("id", "name") if permission.pk else []
    return {"enabled": permission.enabled, "strategies": list(covered)}


def record_permission_saved(
    *, permission: EntryRegeneratePermission, before: dict[str, Any] | None, actor: str
) -> None:
    """The audit row of the permission just saved, from `before` (as the writer read it
    ahead of the change; None: there was none, which allowed nothing); none when it is as
    it was."""
    before = before or permission_state(EntryRegeneratePermission(user_id=permission.user_id))
    after = permission_state(permission)
    if after == before:
        return
    names = ", ".join(strategy["name"] for strategy in after["strategies"]) or "no strategy"
    message = f"entry regeneration {'on' if after['enabled'] else 'off'} for {names}"
    _record(permission.user_id, REGENERATE_PERMISSION_CHANGED, actor, message, before, after)


def record_permission_deleted(*, permission: EntryRegeneratePermission, actor: str) -> None:
    """The audit row of the permission about to be deleted (regeneration off): what it was."""
    message = "entry-regenerate permission deleted: entry regeneration off"
    before = permission_state(permission)
    _record(permission.user_id, REGENERATE_PERMISSION_CHANGED, actor, message, before, None)
