"""Two-factor login: TOTP authenticators (RFC 6238) and one-time recovery codes.

- The TOTP secret is encrypted at rest (accounts.crypto); it is shown to the user only while
  enrolling, as text and as an otpauth:// QR code rendered here as SVG.
- A code is checked against the current 30-second step and one step either side (clocks
  drift); the step it matched is remembered, and a code of that step or an older one is
  refused afterwards, so a code cannot be used twice.
- Recovery codes: ten, 80 random bits each, shown once, stored as SHA-256 hashes, each
  consumed by one atomic UPDATE (two requests racing with the same code: one wins).
- Callers count every code attempt against the login limiter
  (`accounts.services.check_login_rate`) before calling `verify_second_factor`, exactly as
  they count password attempts.
- A browser session that passed the second factor carries the user's id under
  SESSION_VERIFIED_KEY; the admin requires it of staff (accounts.admin_site).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import pyotp
import segno
from django.conf import settings
from django.contrib.auth import authenticate as django_authenticate
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import RecoveryCode, TwoFactorDevice, User
from trading_site.core.errors import ValidationFailed

TOTP_DIGITS = 6
TOTP_PERIOD_SECONDS = 30
# Accept the previous and the next step too: a phone's clock a little off still works.
TOTP_WINDOW_STEPS = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32: 5 bits a character
_RECOVERY_LENGTH = 16  # 80 bits
SESSION_VERIFIED_KEY = "two_factor_verified_user"

METHOD_TOTP = "totp"
METHOD_RECOVERY = "recovery"


class TwoFactorError(ValidationFailed):
    """A two-factor request that cannot be done (400, the field named in details)."""


# ---- pure helpers ---------------------------------------------------------------------------


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, base32 as authenticator apps expect


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // TOTP_PERIOD_SECONDS)


def code_at_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS).generate_otp(step)


def _ascii_digits(code: str) -> bool:
    """0-9 only: str.isdigit also takes full-width and superscript digits, which
    hmac.compare_digest refuses (TypeError) and no authenticator shows."""
    return code.isascii() and code.isdigit()


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step (within the window) whose code equals `code`, or None."""
    if len(code) != TOTP_DIGITS or not _ascii_digits(code):
        return None
    step = current_step(now)
    found = None
    # Compare every candidate (constant time each) rather than stopping at the first.
    for offset in range(-TOTP_WINDOW_STEPS, TOTP_WINDOW_STEPS + 1):
        if hmac.compare_digest(code_at_step(secret, step + offset), code):
            found = step + offset
    return found


def provisioning_uri(*, secret: str, user: User) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS).provisioning_uri(
        name=user.get_username(), issuer_name=settings.TWO_FACTOR_ISSUER
    )


def qr_svg_data_uri(uri: str) -> str:
    """The otpauth:// URI as a QR code: an SVG data URI for an <img> (no script, no CDN)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")


def grouped_secret(secret: str) -> str:
    """The secret in groups of four, easier to type into an authenticator by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def normalize_code(raw: str) -> str:
    return "".join((raw or "").split()).replace("-", "").lower()


def _hash_recovery_code(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:_RECOVERY_LENGTH]
    return "-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4))


def _looks_like_recovery_code(normalized: str) -> bool:
    return len(normalized) == _RECOVERY_LENGTH and all(c in _RECOVERY_ALPHABET for c in normalized)


# ---- reads ----------------------------------------------------------------------------------


def confirmed_device(user: User) -> TwoFactorDevice | None:
    return TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=False).first()


def has_two_factor(user: User) -> bool:
    return TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def pending_device(user: User) -> TwoFactorDevice | None:
    return TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=True).first()


# ---- checking a code ------------------------------------------------------------------------


def _accept_totp(device: TwoFactorDevice, code: str) -> bool:
    step = matching_step(device.secret, code)
    if step is None:
        return False
    # Only a step newer than the last one accepted: the same code twice (or an older one)
    # fails here, also when two requests race with it.
    updated = TwoFactorDevice.objects.filter(
        Q(last_used_step__isnull=True) | Q(last_used_step__lt=step), pk=device.pk
    ).update(last_used_step=step)
    if updated:
        device.last_used_step = step
    return bool(updated)


def _consume_recovery_code(user: User, normalized: str) -> bool:
    return bool(
        RecoveryCode.objects.filter(
            user=user, code_hash=_hash_recovery_code(normalized), used_at__isnull=True
        ).update(used_at=timezone.now())
    )


def verify_second_factor(*, user: User, code: str) -> str | None:
    """Check an authenticator code or a recovery code of `user`'s confirmed device.

    Returns METHOD_TOTP or METHOD_RECOVERY when accepted (a recovery code is used up), None
    otherwise. The caller has already counted the attempt against the login limiter.
    """
    device = confirmed_device(user)
    if device is None:
        return None
    normalized = normalize_code(code)
    if _ascii_digits(normalized):
        return METHOD_TOTP if _accept_totp(device, normalized) else None
    if _looks_like_recovery_code(normalized) and _consume_recovery_code(user, normalized):
        return METHOD_RECOVERY
    return None


# ---- enrolment, recovery codes, disabling ----------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret as text and as a QR code."""

    secret: str
    uri: str
    qr_data_uri: str

    @property
    def grouped(self) -> str:
        return grouped_secret(self.secret)


def enrolment_for(device: TwoFactorDevice) -> Enrolment:
    uri = provisioning_uri(secret=device.secret, user=device.user)
    return Enrolment(secret=device.secret, uri=uri, qr_data_uri=qr_svg_data_uri(uri))


@transaction.atomic
def start_enrolment(*, user: User) -> TwoFactorDevice:
    """A new, unconfirmed authenticator (replacing an earlier unconfirmed one)."""
    if has_two_factor(user):
        raise TwoFactorError(
            "Two-factor login is already on", details={"code": ["already enabled"]}
        )
    TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=True).delete()
    try:
        with transaction.atomic():
            return TwoFactorDevice.objects.create(user=user, secret=new_secret())
    except IntegrityError:
        # Started at this moment by another click (a second tab): that enrolment is the one.
        device = pending_device(user)
        if device is None:
            raise TwoFactorError("Two-factor setup changed meanwhile: start it again") from None
        return device


def _replace_recovery_codes(user: User) -> list[str]:
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user=user, code_hash=_hash_recovery_code(normalize_code(code)))
        for code in codes
    )
    return codes


@transaction.atomic
def confirm_enrolment(*, user: User, code: str) -> list[str]:
    """Turn two-factor login on once the user proves the authenticator works; returns the
    ten recovery codes (shown once, never again)."""
    device = (
        TwoFactorDevice.objects.select_for_update()
        .filter(user=user, confirmed_at__isnull=True)
        .first()
    )
    if device is None:
        raise TwoFactorError(
            "Start the set-up again", details={"code": ["no authenticator is being set up"]}
        )
    if not _accept_totp(device, normalize_code(code)):
        raise TwoFactorError(
            "That code is not right", details={"code": ["wrong or expired code; try the next"]}
        )
    device.confirmed_at = timezone.now()
    device.save(update_fields=["confirmed_at"])
    return _replace_recovery_codes(user)


def _check_password(user: User, password: str) -> None:
    if django_authenticate(username=user.get_username(), password=password) is None:
        raise TwoFactorError("The password is not right", details={"password": ["wrong password"]})


def _check_code(user: User, code: str) -> str:
    method = verify_second_factor(user=user, code=code)
    if method is None:
        raise TwoFactorError(
            "That code is not right",
            details={"code": ["wrong, expired or already used code"]},
        )
    return method


@transaction.atomic
def regenerate_recovery_codes(*, user: User, code: str) -> list[str]:
    """New recovery codes (the old ones stop working), after a valid code."""
    if not has_two_factor(user):
        raise TwoFactorError("Two-factor login is off", details={"code": ["not enabled"]})
    _check_code(user, code)
    return _replace_recovery_codes(user)


@transaction.atomic
def disable_two_factor(*, user: User, password: str, code: str) -> None:
    """Turn two-factor login off: needs the current password and a valid code. Staff
    cannot: the admin requires it of them."""
    if user.is_staff:
        raise TwoFactorError(
            "Staff accounts must keep two-factor login",
            details={"code": ["staff accounts cannot turn two-factor login off"]},
        )
    if not has_two_factor(user):
        raise TwoFactorError("Two-factor login is off", details={"code": ["not enabled"]})
    _check_password(user, password)
    _check_code(user, code)
    reset_two_factor(user=user)


def reset_two_factor(*, user: User) -> None:
    """Remove the authenticator and recovery codes (disabling, or an admin helping a user
    who lost both)."""
    TwoFactorDevice.objects.filter(user=user).delete()
    RecoveryCode.objects.filter(user=user).delete()


# ---- the browser session ---------------------------------------------------------------------


def mark_session_verified(session, user: User) -> None:
    """This browser session passed the second factor for `user` (bound to the user, so it
    means nothing after another user logs in on the same browser)."""
    session[SESSION_VERIFIED_KEY] = user.pk


def session_is_verified(request) -> bool:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    return request.session.get(SESSION_VERIFIED_KEY) == user.pk
