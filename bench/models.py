"""A bench-only table: the bare-insert floor writes here, never into the product's tables."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class BenchRow(models.Model):
    """One row per bare insert: the cheapest authenticated DRF write there is."""

    actor = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    # bench is installed by bench/settings.py only, so django-stubs does not see this model.
    objects: ClassVar[models.Manager[BenchRow]]

    class Meta:
        db_table = "bench_rows"
