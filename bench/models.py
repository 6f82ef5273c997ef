"""A bench-only table: the bare-insert floor writes here, never into the product's tables."""

from __future__ import annotations

from django.db import models


class BenchRow(models.Model):
    """One row per bare insert: the cheapest authenticated DRF write there is."""

    actor = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "bench_rows"
