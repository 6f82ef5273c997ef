"""Who is on the other end of a WebSocket, and may they open it (SPEC 9).

Browsers authenticate with the Django session cookie (channels' AuthMiddlewareStack puts
the user in the scope); programs with an API session token or an API key (`tdk_...`, told
apart by the prefix; a key bound to one broker account is refused with 4403, as on the REST
API), either `?token=<token>` or the
`Sec-WebSocket-Protocol` header: `bearer, <token>` (the server then answers the subprotocol
`bearer`, so the token is never echoed) or the bare token alone (echoed, as the protocol
requires the server to pick one of the offered values).

The origin check lets a handshake without an `Origin` header through: browsers always send
one (and it is cookie-bearing browsers that cross-site WebSocket hijacking abuses); programs
without one must authenticate with a token anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from accounts.api_keys import authenticate_api_key, looks_like_api_key
from accounts.cached_rows import credential_hash
from accounts.services import authenticate_token
from monitoring.ws_origin import SameOriginValidator
from monitoring.ws_revalidation import Credential

BEARER_SUBPROTOCOL = "bearer"


@dataclass(frozen=True)
class WsIdentity:
    user_id: int | None
    subprotocol: str | None = None
    # What to re-check while the socket is open (monitoring.ws_revalidation).
    credential: Credential | None = None
    # Authenticated, but with a credential this socket does not take (a bound API key).
    forbidden: bool = False


def token_from_scope(scope) -> tuple[str | None, str | None]:
    """(token, subprotocol to answer) from the query string or the offered subprotocols."""
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if query.get("token"):
        return query["token"][0], None
    offered = [p.strip() for p in scope.get("subprotocols") or [] if p.strip()]
    if BEARER_SUBPROTOCOL in offered:
        others = [p for p in offered if p != BEARER_SUBPROTOCOL]
        return (others[0] if others else None), BEARER_SUBPROTOCOL
    if len(offered) == 1:
        return offered[0], offered[0]
    return None, None


def _user_for_token(token: str) -> int | None:
    found = authenticate_token(token)
    if not found:
        return None
    user, _session = found
    return user.pk if user.is_active else None


def _identity_for_api_key(raw: str, subprotocol: str | None) -> WsIdentity:
    api_key = authenticate_api_key(raw)
    if api_key is None:
        return WsIdentity(None, subprotocol)
    if api_key.bound_account_id is not None:
        return WsIdentity(api_key.user_id, subprotocol, forbidden=True)
    credential = Credential(user_id=api_key.user_id, api_key_hash=credential_hash(raw))
    return WsIdentity(api_key.user_id, subprotocol, credential)


async def identify(scope) -> WsIdentity:
    """The authenticated user id (session cookie first, then token), or None."""
    token, subprotocol = token_from_scope(scope)
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False) and user.is_active:
        session = scope.get("session")
        key = getattr(session, "session_key", None) or ""
        return WsIdentity(user.pk, subprotocol, Credential(user_id=user.pk, session_key=key))
    if token and looks_like_api_key(token):
        return await database_sync_to_async(_identity_for_api_key)(token, subprotocol)
    if token:
        user_id = await database_sync_to_async(_user_for_token)(token)
        credential = (
            Credential(user_id=user_id, token_hash=credential_hash(token)) if user_id else None
        )
        return WsIdentity(user_id, subprotocol, credential)
    return WsIdentity(None, subprotocol)


def origin_validated(application):
    """Scheme, host and port compared, not the host alone (monitoring.ws_origin)."""
    return SameOriginValidator(application)
