"""Who did it, for the audit trail (OrderEvent.actor)."""

from __future__ import annotations

from accounts.models import User


def user_actor(user: User) -> str:
    """The trader (or a program with their token or key) did it."""
    return f"user:{user.pk}"


def admin_actor(user: User) -> str:
    """Staff did it in the admin."""
    return f"admin:{user.pk}"
