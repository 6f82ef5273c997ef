"""Shapes of the accounts API. Credentials are write-only: accepted, never returned."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import CREDENTIAL_FIELDS, ApiKey, Broker, BrokerAccount, Strategy, User
from trading_site.core.api.fields import BIGINT_MAX, ConfirmationField


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=True)
    password = serializers.CharField(max_length=256, trim_whitespace=False)
    otp = serializers.CharField(
        max_length=32,
        required=False,
        allow_blank=True,
        help_text=(
            "Two-factor code, in the same request as the password: the 6-digit code of the "
            "authenticator app, or one of the recovery codes (each works once). Required "
            "for users with two-factor login; ignored for others."
        ),
    )


class SessionUserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email"]


class LoginResponseSerializer(serializers.Serializer):
    session_token = serializers.CharField()
    user = SessionUserSerializer()
    expires_at = serializers.DateTimeField()


class CredentialsSerializer(serializers.Serializer):
    """The broker login secrets. Every key optional here; the service checks per broker."""

    app_key = serializers.CharField(required=False, allow_blank=True, max_length=256)
    secret_key = serializers.CharField(required=False, allow_blank=True, max_length=256)
    client_id = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="XTS dealer logins: the client code this account trades for, one of the "
        "login's clientCodes (checked at connect); needed when the login has several.",
    )
    user_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    password = serializers.CharField(required=False, allow_blank=True, max_length=256)
    totp_secret = serializers.CharField(required=False, allow_blank=True, max_length=128)
    base_url = serializers.URLField(required=False, allow_blank=True, max_length=300)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(CREDENTIAL_FIELDS))
            if unknown:
                raise serializers.ValidationError(
                    [f"unknown credential key: {key}" for key in unknown]
                )
        return super().to_internal_value(data)


class BrokerAccountSerializer(serializers.ModelSerializer):
    """What the API shows of an account: never a credential, only which keys are set."""

    credential_keys = serializers.SerializerMethodField()
    trading_locked = serializers.BooleanField(
        read_only=True, help_text="The kill switch locked new orders until trading is re-enabled"
    )

    class Meta:
        model = BrokerAccount
        fields = [
            "id",
            "account_name",
            "broker",
            "cash_available",
            "margin_utilized",
            "net_margin",
            "total_mtm",
            "realized_mtm",
            "unrealized_mtm",
            "is_active",
            "trading_locked",
            "trading_locked_at",
            "credential_keys",
            "last_synced_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_credential_keys(self, account: BrokerAccount) -> list[str]:
        return sorted(account.credentials or {})


class BrokerAccountCreateSerializer(serializers.Serializer):
    account_name = serializers.CharField(max_length=100)
    broker = serializers.ChoiceField(choices=Broker.choices, default=Broker.PAPER)
    credentials = CredentialsSerializer(required=False, write_only=True)


class BrokerAccountUpdateSerializer(serializers.Serializer):
    account_name = serializers.CharField(max_length=100, required=False)
    credentials = CredentialsSerializer(required=False, write_only=True)
    is_active = serializers.BooleanField(required=False)

    def validate(self, attrs):
        if "broker" in self.initial_data:
            raise serializers.ValidationError({"broker": ["the broker cannot be changed"]})
        return attrs


class StrategySerializer(serializers.ModelSerializer):
    class Meta:
        model = Strategy
        fields = ["id", *Strategy.SETTINGS, "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        # Uniqueness per user is checked by the service (the user is not a field here).
        validators: list = []
        extra_kwargs = {
            "name": {"validators": []},
            "max_regenerations": {"min_value": 0, "max_value": 100},
            "trailing_sl_trigger": {"min_value": 0},
            "trailing_sl_step": {"min_value": 0},
            "max_slippage_pct": {"min_value": 0, "max_value": 100},
        }


class RegeneratePermissionSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    strategy_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=BIGINT_MAX),
        allow_empty=True,
        max_length=1000,
    )


class KillSwitchSerializer(serializers.Serializer):
    confirm = ConfirmationField("KILL")


class NotSquaredOffSerializer(serializers.Serializer):
    """The brackets whose position a kill switch or a position exit did not square off
    (orders.services.square_off), protected or not: the answers of both extend it."""

    protected_order_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Brackets not squared off whose stop-loss and targets stay working (kept, "
        "or placed again at once)",
    )
    unprotected_order_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Brackets not squared off (or only in part) whose stop-loss could not be "
        "placed again: square them off at the broker",
    )


class KillSwitchResponseSerializer(NotSquaredOffSerializer):
    complete = serializers.BooleanField()
    summary = serializers.CharField(help_text="What was done, in plain words")
    trading_locked = serializers.BooleanField()
    cancelled_order_ids = serializers.ListField(child=serializers.IntegerField())
    cancelled_legs = serializers.ListField(child=serializers.CharField())
    squared_off = serializers.ListField(
        child=serializers.CharField(), help_text='e.g. "RELIANCE 10 sold at market"'
    )
    exit_legs = serializers.ListField(child=serializers.CharField())
    exit_order_ids = serializers.ListField(child=serializers.IntegerField())
    # The metaclass moves declared fields off the class, so this shadows Serializer.errors
    # for the type checker only.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]


class EnableTradingSerializer(serializers.Serializer):
    confirm = ConfirmationField("ENABLE")


class EnableTradingResponseSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    trading_locked = serializers.BooleanField()
    changed = serializers.BooleanField(help_text="false when trading was not locked")


class ApiKeySerializer(serializers.ModelSerializer):
    """A key as listed: never the key itself (shown once, at creation)."""

    bound_account_id = serializers.IntegerField(allow_null=True, read_only=True)
    bound_account_name = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(source="is_live", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "scope",
            "display_prefix",
            "bound_account_id",
            "bound_account_name",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = fields

    def get_bound_account_name(self, api_key: ApiKey) -> str | None:
        account = api_key.bound_account
        return account.account_name if account else None


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, trim_whitespace=True)
    scope = serializers.ChoiceField(choices=ApiKey.Scope.choices, default=ApiKey.Scope.READ)
    bound_account_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Bind the key to one of your broker accounts (the account-scoped API).",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Optional; the key stops working then."
    )


class ApiKeyCreatedSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The API key: shown in this answer only.")
    api_key = ApiKeySerializer()
