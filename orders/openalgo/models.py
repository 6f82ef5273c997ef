"""The OpenAlgo API's request ledger: what makes a client's retry place once."""

from __future__ import annotations

from django.db import models


class OpenAlgoRequest(models.Model):
    """One OpenAlgo write request (placeorder, placesmartorder, basketorder, splitorder,
    closeposition), claimed before anything is placed and answered after.

    `fingerprint` is the SHA-256 of the endpoint, the API key, the account it acts on and
    the canonical body (every field but `apikey`); `window` is the idempotency window the
    request fell in (`OPENALGO_IDEMPOTENCY_SECONDS`). The same fingerprint in the same (or
    the previous, still open) window is the same request: it answers the first one's
    answer, never placing again. The unique constraint settles two copies arriving at once.
    """

    api_key = models.ForeignKey(
        "accounts.ApiKey", on_delete=models.CASCADE, related_name="openalgo_requests"
    )
    account = models.ForeignKey(
        "accounts.BrokerAccount", on_delete=models.CASCADE, related_name="openalgo_requests"
    )
    endpoint = models.CharField(max_length=32)
    fingerprint = models.CharField(max_length=64)
    window = models.BigIntegerField()
    # The answer sent (None while the request is being handled), and whether it wrote
    # anything: an answer that placed nothing is taken over by a later copy (re-evaluated).
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    answer = models.JSONField(null=True, blank=True)
    placed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "openalgo_requests"
        constraints = [
            models.UniqueConstraint(fields=["fingerprint", "window"], name="uniq_openalgo_request")
        ]
        indexes = [models.Index(fields=["api_key", "created_at"])]

    def __str__(self) -> str:
        return f"OpenAlgo {self.endpoint} {self.fingerprint[:12]} ({self.window})"
