"""Users, their API sessions, broker accounts, broker sessions and trading preferences."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from accounts.crypto import EncryptedJSONField, EncryptedTextField

MONEY: dict[str, Any] = {"max_digits": 15, "decimal_places": 2, "default": Decimal("0.00")}
PRICE: dict[str, Any] = {"max_digits": 15, "decimal_places": 4}


class User(AbstractUser):
    """A trader or an admin. Deactivated (is_active=False), never deleted."""

    email = models.EmailField(unique=True)
    # The account of the user's last successful placement from a web form: the forms'
    # default (else a paper account), so live money is never chosen by the alphabet.
    last_used_account = models.ForeignKey(
        "accounts.BrokerAccount",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "users"


class AuthSession(models.Model):
    """An API session token. Only its SHA-256 hash is stored; the token is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_sessions")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        db_table = "auth_sessions"
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"session {self.pk} of {self.user_id}"


class Broker(models.TextChoices):
    IIFL = "IIFL", "IIFL (XTS)"
    WISDOM_CAPITAL = "WISDOM_CAPITAL", "Wisdom Capital (XTS)"
    NIRMAL_BANG = "NIRMAL_BANG", "Nirmal Bang (XTS)"
    PAPER = "PAPER", "Paper exchange"


XTS_BROKERS = (Broker.IIFL, Broker.WISDOM_CAPITAL, Broker.NIRMAL_BANG)

# The keys a BrokerAccount's encrypted credentials may hold (write-only everywhere).
CREDENTIAL_FIELDS = (
    "app_key",
    "secret_key",
    "client_id",
    "user_id",
    "password",
    "totp_secret",
    "base_url",
)


class BrokerAccount(models.Model):
    """A trader's account at a broker. Credentials are one encrypted JSON object."""

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="broker_accounts")
    account_name = models.CharField(max_length=100)
    broker = models.CharField(max_length=20, choices=Broker.choices, default=Broker.PAPER)
    credentials = EncryptedJSONField(default=dict, blank=True)
    cash_available = models.DecimalField(**MONEY)
    margin_utilized = models.DecimalField(**MONEY)
    net_margin = models.DecimalField(**MONEY)
    total_mtm = models.DecimalField(**MONEY)
    unrealized_mtm = models.DecimalField(**MONEY)
    realized_mtm = models.DecimalField(**MONEY)
    is_active = models.BooleanField(default=True)
    # Set by the kill switch: no new order until the trader re-enables trading; exits of
    # existing positions still go out (orders.services.trading_lock).
    trading_locked_at = models.DateTimeField(null=True, blank=True)
    trading_locked_by = models.CharField(max_length=64, blank=True, default="")
    # A live account's web order forms ask "place with real money?" before placing (API
    # clients are never asked). Ignored for paper accounts.
    confirm_live_orders = models.BooleanField(
        default=True, help_text="Live accounts: web order forms ask for a confirmation first."
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # What the last complete sync of the monitoring cycle saw (orders.services.sync): a
    # fingerprint of the broker's order and trade books, and of the legs the sync compares
    # with them, after it. A cycle that reads the same books and finds the same legs has
    # nothing to store or apply from them. Blank: never synced.
    synced_book_digest = models.CharField(max_length=32, blank=True, default="", editable=False)
    synced_legs_digest = models.CharField(max_length=32, blank=True, default="", editable=False)
    # Set on the paper account that stands in for this one in OpenAlgo's analyzer mode (made
    # on first use, same owner): its own paper book, its money never added to the live one.
    paper_twin_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="paper_twin"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Set by the dashboard and settings pages for their tables (trading_site.pages), never
    # stored: the stream's health (orders.brokers.streams.health.StreamHealth) and today's PnL.
    stream: Any
    today_pnl: Decimal
    today_fills: int

    class Meta:
        db_table = "broker_accounts"
        constraints = [
            models.UniqueConstraint(fields=["user", "account_name"], name="uniq_account_name")
        ]
        indexes = [models.Index(fields=["user", "is_active"])]

    def __str__(self) -> str:
        return f"{self.account_name} ({self.broker})"

    @property
    def is_paper(self) -> bool:
        return self.broker == Broker.PAPER

    @property
    def trading_locked(self) -> bool:
        return self.trading_locked_at is not None

    @property
    def is_paper_twin(self) -> bool:
        return self.paper_twin_of_id is not None


class BrokerSession(models.Model):
    """The live broker login of one account; the OneToOne makes 'one per account' a DB fact."""

    account = models.OneToOneField(
        BrokerAccount, on_delete=models.CASCADE, related_name="broker_session"
    )
    access_token = EncryptedTextField()
    broker_user_id = models.CharField(max_length=64, blank=True, default="")
    is_investor_client = models.BooleanField(default=True)
    # The client code a dealer login acts for (one of its clientCodes, checked at login).
    client_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    invalidated_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "broker_sessions"

    def __str__(self) -> str:
        return f"broker session of account {self.account_id}"


class BrokerLoginLease(models.Model):
    """Who is logging an account in to its broker right now: an XTS login kills the previous
    token of its appKey, so two processes must never log one account in at once. Taken by
    a conditional UPDATE (orders.brokers.sessions), so the database, not Redis, is the lock:
    it holds while Redis is down. `expires_at` frees it when its holder died mid-login."""

    account = models.OneToOneField(
        BrokerAccount, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    owner = models.CharField(max_length=32, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "broker_login_leases"

    def __str__(self) -> str:
        return f"login lease of account {self.account_id}"


class Strategy(models.Model):
    """A named strategy and the automation it allows (regeneration, trailing SL, slippage)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="strategies")
    name = models.CharField(max_length=100)
    allow_regeneration = models.BooleanField(default=False)
    max_regenerations = models.PositiveIntegerField(default=1)
    trailing_sl_enabled = models.BooleanField(default=False)
    # Move the SL once the price has run this far past the last reference (absolute price).
    trailing_sl_trigger = models.DecimalField(**PRICE, default=Decimal("0"))
    # ... and move it by this much each time.
    trailing_sl_step = models.DecimalField(**PRICE, default=Decimal("0"))
    # The most a fair-price re-pricing may move a limit price, in percent of the old price.
    max_slippage_pct = models.DecimalField(max_digits=7, decimal_places=4, default=Decimal("1"))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # What a trader sets (the API's and the settings page's fields).
    SETTINGS = [
        "name",
        "allow_regeneration",
        "max_regenerations",
        "trailing_sl_enabled",
        "trailing_sl_trigger",
        "trailing_sl_step",
        "max_slippage_pct",
    ]

    class Meta:
        db_table = "strategies"
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="uniq_strategy")]
        verbose_name_plural = "strategies"

    def __str__(self) -> str:
        return self.name


class EntryRegeneratePermission(models.Model):
    """Whether the monitoring loop may re-place this user's rejected entries, and for which."""

    user = models.OneToOneField(
        User, on_delete=models.CASCADE, related_name="entry_regenerate_permission"
    )
    enabled = models.BooleanField(default=False)
    strategies = models.ManyToManyField(Strategy, blank=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "entry_regenerate_permissions"

    def __str__(self) -> str:
        return f"regenerate permission of {self.user_id}"


class TwoFactorDevice(models.Model):
    """A user's TOTP authenticator (RFC 6238). Unconfirmed until the user proves a first code.

    `last_used_step` is the time step of the last code accepted: a code of that step or an
    older one is refused, so a code seen over someone's shoulder cannot be replayed.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="two_factor_device")
    secret = EncryptedTextField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_used_step = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "two_factor_devices"

    def __str__(self) -> str:
        return f"authenticator of {self.user_id}"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class RecoveryCode(models.Model):
    """A one-time two-factor code for a lost phone. Only its SHA-256 hash is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "two_factor_recovery_codes"
        indexes = [models.Index(fields=["user", "used_at"])]

    def __str__(self) -> str:
        return f"recovery code {self.pk} of {self.user_id}"


class ApiKey(models.Model):
    """A long-lived, named API key. Only its SHA-256 hash is stored; the key is shown once.

    `read` keys may only read; `trade` keys may also place, modify and cancel. A key bound to
    a broker account acts for that account alone (the account-scoped OpenAlgo API); the desk's
    own API, which spans every account, refuses bound keys.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        TRADE = "trade", "Trade (includes read)"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    bound_account = models.ForeignKey(
        BrokerAccount,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="api_keys",
    )
    # The key's first characters, shown in lists so a trader can tell keys apart.
    display_prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_ip = models.GenericIPAddressField(null=True, blank=True)
    # OpenAlgo's analyzer mode: the key's orders go to the paper twin of its bound account.
    analyzer_mode = models.BooleanField(default=False)

    class Meta:
        db_table = "api_keys"
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"API key {self.name!r} ({self.display_prefix}…) of {self.user_id}"

    @property
    def allows_trading(self) -> bool:
        return self.scope == self.Scope.TRADE

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )
