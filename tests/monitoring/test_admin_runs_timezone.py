"""The MonitoringRun admin list was a 500 on MariaDB without time-zone tables (issue 10,
item 10): its date drill-down asked the database to convert times to Asia/Kolkata
(CONVERT_TZ), which answers NULL without those tables. This suite's MariaDB has none."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from monitoring.models import MonitoringRun
from tests import factories
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _database_lacks_time_zone_tables() -> bool:
    if connection.vendor != "mysql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONVERT_TZ('2026-01-01 00:00:00', 'UTC', 'Asia/Kolkata')")
        return cursor.fetchone()[0] is None


def test_the_run_list_and_its_date_filter_work_without_time_zone_tables():
    assert _database_lacks_time_zone_tables() or connection.vendor != "mysql"
    trader = make_user()
    now = timezone.now()
    for days in (0, 1, 40):
        run = MonitoringRun.objects.create(
            user=trader, cycle_key=f"k{days}", status=MonitoringRun.Status.OK
        )
        MonitoringRun.objects.filter(pk=run.pk).update(started_at=now - timedelta(days=days))
    admin = factories.staff_client()
    page = admin.get("/admin/monitoring/monitoringrun/")
    assert page.status_code == 200
    assert "k40" in page.content.decode()
    # A date filter narrows the list (in India's calendar).
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    filtered = admin.get(  # the filter's own "Today" link
        "/admin/monitoring/monitoringrun/",
        {"started_at__gte": str(midnight), "started_at__lt": str(midnight + timedelta(days=1))},
    )
    assert filtered.status_code == 200
    body = filtered.content.decode()
    assert "k0" in body and "k40" not in body
