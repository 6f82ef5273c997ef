"""Accounts API: login/logout, broker accounts, strategies, the regenerate permission.

Views parse input, call one service or selector, and shape the answer with the serializers
beside them. Every object is looked up through the caller's own querysets: another user's
object is a 404.
"""

from __future__ import annotations

from django.contrib.auth import logout as django_logout
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import api_keys, selectors, services
from accounts.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    BrokerAccountCreateSerializer,
    BrokerAccountSerializer,
    BrokerAccountUpdateSerializer,
    LoginResponseSerializer,
    LoginSerializer,
    RegeneratePermissionSerializer,
    SessionUserSerializer,
    StrategySerializer,
)
from accounts.audit import user_actor
from accounts.permissions import ApiKeyScope, SessionCredentialsOnly
from trading_site.core.api.errors import AUTHENTICATION_FAILED, PERMISSION_DENIED, envelope
from trading_site.core.api.owned_rows import OwnedRowChangeView, OwnedRowsView, OwnedRowView


def client_ip_of(request) -> str | None:
    """The caller's address. Behind a proxy, set it up to pass REMOTE_ADDR correctly."""
    return request.META.get("REMOTE_ADDR") or None


def _unauthorized(message: str, details: dict | None = None) -> Response:
    response = Response(
        envelope(message, AUTHENTICATION_FAILED, details), status=status.HTTP_401_UNAUTHORIZED
    )
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


class LoginView(APIView):
    """Exchange a username and password for a session token (shown once).

    Two-factor login is one request, not two steps: a user with two-factor login sends the
    code in `otp` beside the password (an authenticator code or a recovery code). Without
    it the answer is 401 with `details.otp` = ["required"]; with a wrong, expired or already
    used code, 401 with `details.otp` = ["invalid"]. Every attempt, whichever part is wrong,
    counts against the same per-username and per-IP limit (429 past it). A staff user who
    has not set up two-factor login gets 403 until they do (in the browser, Settings).
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Login has its own per-username and per-IP buckets (accounts.services.login).
    throttle_classes: list = []

    @extend_schema(
        request=LoginSerializer,
        responses={
            200: LoginResponseSerializer,
            401: OpenApiResponse(
                description="Wrong username or password; or, for a user with two-factor "
                'login, `details.otp` is ["required"] (no code sent) or ["invalid"] '
                "(wrong, expired or already used code)."
            ),
            403: OpenApiResponse(
                description="A staff user without two-factor login: set it up first."
            ),
        },
        auth=[],
    )
    def post(self, request):
        data = LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = services.login(
                username=data.validated_data["username"],
                password=data.validated_data["password"],
                otp=data.validated_data.get("otp") or "",
                client_ip=client_ip_of(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
        except services.InvalidCredentials:
            return _unauthorized("Invalid credentials")
        except services.SecondFactorRequired:
            return _unauthorized("A two-factor code is required", {"otp": ["required"]})
        except services.SecondFactorInvalid:
            return _unauthorized(
                "The two-factor code is wrong, expired or already used", {"otp": ["invalid"]}
            )
        except services.TwoFactorEnrolmentRequired:
            return Response(
                envelope(
                    "Staff accounts must set up two-factor login first (Settings, in the browser)",
                    PERMISSION_DENIED,
                ),
                status=status.HTTP_403_FORBIDDEN,
            )
        return Response(
            {
                "session_token": result.token,
                "user": SessionUserSerializer(result.user).data,
                "expires_at": result.session.expires_at,
            }
        )


class LogoutView(APIView):
    """Revoke the token of this request at once (in the database and every process's cache)."""

    rate_limit_group = "default"

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        if isinstance(request.auth, services.AuthSession):
            services.logout(session=request.auth)
        else:
            django_logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BrokerAccountListView(OwnedRowsView):
    list_envelope = "accounts"
    envelope = "account"
    serializer_class = BrokerAccountSerializer
    create_serializer_class = BrokerAccountCreateSerializer
    list_operation_id = "accounts_list"
    list_schema = inline_serializer(
        "BrokerAccountList", {"accounts": BrokerAccountSerializer(many=True)}
    )
    created_schema = inline_serializer(
        "BrokerAccountCreated", {"account": BrokerAccountSerializer()}
    )

    def rows(self, request):
        return selectors.broker_accounts_for(user=request.user)

    def create(self, request, fields):
        return services.create_broker_account(
            user=request.user,
            account_name=fields["account_name"],
            broker=fields["broker"],
            credentials=fields.get("credentials") or {},
        )


class BrokerAccountDetailView(OwnedRowChangeView):
    url_kwarg = "account_id"
    envelope = "account"
    serializer_class = BrokerAccountSerializer
    changes_serializer_class = BrokerAccountUpdateSerializer
    answer_schema = inline_serializer("BrokerAccountDetail", {"account": BrokerAccountSerializer()})
    delete_answers_row = True
    delete_description = "Deactivate (soft delete): monitoring and trading stop, the history stays."

    def find(self, request, row_id):
        return selectors.broker_account_for(user=request.user, account_id=row_id)

    def update(self, request, row, changes):
        return services.update_broker_account(account=row, **changes)

    def remove(self, request, row):
        return services.deactivate_broker_account(account=row)


class StrategyListView(OwnedRowsView):
    list_envelope = "strategies"
    envelope = "strategy"
    serializer_class = StrategySerializer
    list_operation_id = "strategies_list"
    list_schema = inline_serializer("StrategyList", {"strategies": StrategySerializer(many=True)})
    created_schema = inline_serializer("StrategyCreated", {"strategy": StrategySerializer()})

    def rows(self, request):
        return selectors.strategies_for(user=request.user)

    def create(self, request, fields):
        return services.create_strategy(user=request.user, actor=user_actor(request.user), **fields)


_STRATEGY_RESPONSE = inline_serializer("StrategyDetail", {"strategy": StrategySerializer()})


class StrategyDetailView(OwnedRowChangeView):
    url_kwarg = "strategy_id"
    envelope = "strategy"
    serializer_class = StrategySerializer
    answer_schema = _STRATEGY_RESPONSE

    def find(self, request, row_id):
        return selectors.strategy_for(user=request.user, strategy_id=row_id)

    def update(self, request, row, changes):
        return services.update_strategy(strategy=row, actor=user_actor(request.user), **changes)

    def remove(self, request, row):
        services.delete_strategy(strategy=row, actor=user_actor(request.user))

    @extend_schema(request=StrategySerializer, responses=_STRATEGY_RESPONSE)
    def put(self, request, strategy_id: int):
        return self.change(request, partial=False)


class _PermissionOut(serializers.Serializer):
    enabled = serializers.BooleanField()
    strategy_ids = serializers.ListField(child=serializers.IntegerField())
    strategies = inline_serializer(
        "PermissionStrategy",
        {"id": serializers.IntegerField(), "name": serializers.CharField()},
        many=True,
    )
    updated_at = serializers.DateTimeField()


def _permission_body(permission) -> dict:
    strategies = list(permission.strategies.order_by("name").values("id", "name"))
    return {
        "enabled": permission.enabled,
        "strategy_ids": [s["id"] for s in strategies],
        "strategies": strategies,
        "updated_at": permission.updated_at,
    }


class EntryRegeneratePermissionView(APIView):
    """The caller's one permission: whether rejected entries of these strategies re-place."""

    @extend_schema(responses=_PermissionOut)
    def get(self, request):
        permission = services.get_or_create_regenerate_permission(user=request.user)
        return Response(_permission_body(permission))

    @extend_schema(request=RegeneratePermissionSerializer, responses=_PermissionOut)
    def put(self, request):
        data = RegeneratePermissionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        permission = services.set_regenerate_permission(
            user=request.user,
            enabled=data.validated_data["enabled"],
            strategy_ids=data.validated_data["strategy_ids"],
            actor=user_actor(request.user),
        )
        return Response(_permission_body(permission))

    @extend_schema(request=RegeneratePermissionSerializer, responses=_PermissionOut)
    def patch(self, request):
        current = services.get_or_create_regenerate_permission(user=request.user)
        data = RegeneratePermissionSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        permission = services.set_regenerate_permission(
            user=request.user,
            enabled=data.validated_data.get("enabled", current.enabled),
            strategy_ids=data.validated_data.get(
                "strategy_ids", list(current.strategies.values_list("id", flat=True))
            ),
            actor=user_actor(request.user),
        )
        return Response(_permission_body(permission))


# ---- API keys ----------------------------------------------------------------------------


class ApiKeyListView(APIView):
    """The caller's API keys (never the keys themselves), and creating one.

    Needs a session token or the browser session: an API key cannot manage keys.
    """

    permission_classes = [IsAuthenticated, ApiKeyScope, SessionCredentialsOnly]

    @extend_schema(
        operation_id="api_keys_list",
        parameters=[
            OpenApiParameter(
                "include_revoked", bool, description="also list revoked keys (default: no)"
            )
        ],
        responses=inline_serializer("ApiKeyList", {"api_keys": ApiKeySerializer(many=True)}),
    )
    def get(self, request):
        include_revoked = request.query_params.get("include_revoked", "") in ("1", "true")
        keys = selectors.api_keys_for(user=request.user, include_revoked=include_revoked)
        return Response({"api_keys": ApiKeySerializer(keys, many=True).data})

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request):
        data = ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        bound_id = data.validated_data.get("bound_account_id")
        bound = (
            selectors.active_broker_account_for(user=request.user, account_id=bound_id)
            if bound_id
            else None
        )
        raw, api_key = api_keys.create_api_key(
            user=request.user,
            name=data.validated_data["name"],
            scope=data.validated_data["scope"],
            bound_account=bound,
            expires_at=data.validated_data.get("expires_at"),
            client_ip=client_ip_of(request),
        )
        return Response(
            {"key": raw, "api_key": ApiKeySerializer(api_key).data},
            status=status.HTTP_201_CREATED,
        )


class ApiKeyDetailView(OwnedRowView):
    """One of the caller's keys; DELETE revokes it at once (every process, open sockets
    within seconds). Another user's key is a 404."""

    permission_classes = [IsAuthenticated, ApiKeyScope, SessionCredentialsOnly]
    url_kwarg = "key_id"
    envelope = "api_key"
    serializer_class = ApiKeySerializer
    answer_schema = inline_serializer("ApiKeyDetail", {"api_key": ApiKeySerializer()})

    def find(self, request, row_id):
        return selectors.api_key_for(user=request.user, key_id=row_id)

    def remove(self, request, row):
        api_keys.revoke_api_key(api_key=row)
