"""Keep cached API sessions honest when a user row changes."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import User
from accounts.services import forget_cached_sessions


@receiver(post_save, sender=User, dispatch_uid="accounts.forget_cached_sessions")
def forget_cached_sessions_on_user_change(sender, instance: User, created: bool, **kwargs):
    # Cached token entries hold a copy of the user: a deactivation or a staff change must be
    # seen by the next request on every process, not after the cache entry expires.
    update_fields = kwargs.get("update_fields")
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return

    forget_cached_sessions(user_id=instance.pk)
