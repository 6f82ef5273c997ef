"""One placement per OpenAlgo request, however often a client sends it.

OpenAlgo clients (scripts, Amibroker, TradingView relays) resend a request they believe
failed. The desk decides "the same request" by content: the SHA-256 of the endpoint, the
API key, the account it acts on (the analyzer's paper twin is another account) and the
canonical JSON body (every field but `apikey`, the strategy included). Within
OPENALGO_IDEMPOTENCY_SECONDS of the first, the same fingerprint answers the first answer and
places nothing; a copy arriving while the first is still being handled waits for it (up to
OPENALGO_IDEMPOTENCY_WAIT_SECONDS).

The request is claimed in the database (`OpenAlgoRequest`) before anything is placed, so
the claim is itself written ahead: two copies at once meet at the unique constraint, on
every process. The window is a time bucket; the previous bucket is checked too, so a retry
just after a bucket boundary still finds the first. (Two copies arriving in the very same
instant on either side of a boundary would both place: retries are seconds apart.)

The trade-off: two genuinely identical orders within the window place once. A strategy that
means two must make them differ: another quantity, or any extra field (the desk ignores
unknown fields but counts them here), such as `"tag": "2"`.

An answer that placed nothing (a validation error, a closed market) is given to the copies
that arrived while it was being decided; a copy arriving after it takes the claim over and
is evaluated afresh (the market may have opened).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiKey, BrokerAccount
from orders.openalgo.models import OpenAlgoRequest

POLL_SECONDS = 0.1
# Claims are kept this long (the audit of what a key sent), then purged as the key sends more.
KEEP_CLAIMS = timedelta(days=1)
_PURGE_EVERY_SECONDS = 60
UNKNOWN_OUTCOME = (
    "The first copy of this request failed inside the desk; check the order book before "
    "sending it again"
)


@dataclass
class Answer:
    """What an OpenAlgo endpoint answers: an HTTP status and the JSON body. `placed` says
    whether anything was written (an answer that placed nothing releases its claim)."""

    status: int
    body: dict[str, Any]
    placed: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def fingerprint(*, endpoint: str, api_key: ApiKey, account: BrokerAccount, body: dict) -> str:
    fields = {k: v for k, v in body.items() if k != "apikey"}
    canonical = json.dumps(
        {"endpoint": endpoint, "key": api_key.pk, "account": account.pk, "body": fields},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _purge_old_claims(api_key: ApiKey) -> None:
    if cache.add(f"openalgo:purge:{api_key.pk}", 1, _PURGE_EVERY_SECONDS):
        OpenAlgoRequest.objects.filter(
            api_key=api_key, created_at__lt=timezone.now() - KEEP_CLAIMS
        ).delete()


def _replay(claim: OpenAlgoRequest) -> Answer:
    """The first request's answer, waiting for it while the first is still being handled."""
    deadline = time.monotonic() + settings.OPENALGO_IDEMPOTENCY_WAIT_SECONDS
    while True:
        found = OpenAlgoRequest.objects.filter(pk=claim.pk).values("http_status", "answer").first()
        if found is not None and found["answer"] is not None:
            body = dict(found["answer"])
            body["replayed"] = True
            return Answer(status=found["http_status"] or 200, body=body)
        if found is None or time.monotonic() >= deadline:
            return Answer(
                status=409,
                body={
                    "status": "error",
                    "message": "The same request is still being handled (sent "
                    f"{int((timezone.now() - claim.created_at).total_seconds())} s ago); "
                    "nothing was placed again. Its order appears in the order book.",
                },
            )
        time.sleep(POLL_SECONDS)


def _claim(
    request_print: str, window_seconds: int, api_key: ApiKey, account: BrokerAccount, endpoint: str
) -> tuple[OpenAlgoRequest | None, OpenAlgoRequest | None]:
    """(our claim, None), or (None, the earlier claim of the same request to answer with).
    An earlier request that was answered without placing anything is taken over (one copy
    wins the conditional update) and evaluated again: a refusal is not a reason to refuse a
    later retry, only the copies that arrived while it was being decided."""
    now = timezone.now()
    window = int(now.timestamp() // window_seconds)
    earlier = (
        OpenAlgoRequest.objects.filter(
            fingerprint=request_print,
            window__in=(window, window - 1),
            created_at__gte=now - timedelta(seconds=window_seconds),
        )
        .order_by("id")
        .first()
    )
    if earlier is None:
        try:
            with transaction.atomic():
                claim = OpenAlgoRequest.objects.create(
                    api_key=api_key,
                    account=account,
                    endpoint=endpoint,
                    fingerprint=request_print,
                    window=window,
                )
            return claim, None
        except IntegrityError:
            earlier = OpenAlgoRequest.objects.get(fingerprint=request_print, window=window)
    if earlier.answered_at is not None and not earlier.placed:
        taken = OpenAlgoRequest.objects.filter(
            pk=earlier.pk, answered_at=earlier.answered_at, placed=False
        ).update(answer=None, http_status=None, answered_at=None)
        if taken:
            return earlier, None
    return None, earlier


def run_once(
    *,
    endpoint: str,
    api_key: ApiKey,
    account: BrokerAccount,
    body: dict,
    handle: Callable[[int | None], Answer],
) -> Answer:
    """`handle(claim_id)` once per fingerprint and window; copies answer its answer.
    `claim_id` (None when the window is 0) names the request in the orders' keys."""
    window_seconds = int(settings.OPENALGO_IDEMPOTENCY_SECONDS)
    if window_seconds <= 0:
        return handle(None)
    _purge_old_claims(api_key)
    request_print = fingerprint(endpoint=endpoint, api_key=api_key, account=account, body=body)
    claim, earlier = _claim(request_print, window_seconds, api_key, account, endpoint)
    if claim is None:
        assert earlier is not None  # no claim: an earlier request holds it
        return _replay(earlier)
    try:
        answer = handle(claim.pk)
    except BaseException:
        # Unknown whether anything was placed: a copy in the window is told so, rather than
        # placing again; the error itself answers as usual.
        OpenAlgoRequest.objects.filter(pk=claim.pk).update(
            http_status=500,
            answer={"status": "error", "message": UNKNOWN_OUTCOME},
            placed=True,  # perhaps: never taken over within the window
            answered_at=timezone.now(),
        )
        raise
    OpenAlgoRequest.objects.filter(pk=claim.pk).update(
        http_status=answer.status,
        answer=answer.body,
        placed=answer.placed,
        answered_at=timezone.now(),
    )
    return answer
