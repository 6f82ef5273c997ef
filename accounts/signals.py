"""Keep cached API sessions and keys honest when a user row changes or a credential row is
deleted."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.api_keys import forget_cached_api_keys, forget_deleted_api_key, revoke_user_api_keys
from accounts.models import ApiKey, AuthSession, User
from accounts.services import forget_cached_sessions, forget_deleted_session, revoke_user_sessions


@receiver(post_save, sender=User, dispatch_uid="accounts.revoke_sessions_on_password_change")
def revoke_sessions_on_password_change(sender, instance: User, created: bool, **kwargs):
    # AbstractBaseUser.set_password keeps the raw password in `_password` until save() has
    # sent this signal (Django's silent hash upgrade at login clears it first): a real change
    # of password, by the web page, the admin or a shell. Every API token ends; browser
    # sessions end through Django's session hash, open sockets through their re-check.
    # API keys end too: whoever changes a password after a leak must not have to remember
    # every key (the key page says so before the change).
    if created or getattr(instance, "_password", None) is None:
        return
    revoke_user_sessions(user=instance)
    revoke_user_api_keys(user=instance)


@receiver(post_save, sender=User, dispatch_uid="accounts.forget_cached_sessions")
def forget_cached_sessions_on_user_change(sender, instance: User, created: bool, **kwargs):
    # Cached token entries hold a copy of the user: a deactivation or a staff change must be
    # seen by the next request on every process, not after the cache entry expires.
    update_fields = kwargs.get("update_fields")
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return

    forget_cached_sessions(user_id=instance.pk)
    forget_cached_api_keys(user_id=instance.pk)


# A credential deleted instead of revoked (the admin's delete, a user's deletion cascading to
# them) ends at once on every process, as a revocation does.
@receiver(post_delete, sender=AuthSession, dispatch_uid="accounts.forget_deleted_session")
def forget_deleted_session_everywhere(sender, instance: AuthSession, **kwargs):
    forget_deleted_session(session=instance)


@receiver(post_delete, sender=ApiKey, dispatch_uid="accounts.forget_deleted_api_key")
def forget_deleted_api_key_everywhere(sender, instance: ApiKey, **kwargs):
    forget_deleted_api_key(api_key=instance)
