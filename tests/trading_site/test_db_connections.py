"""A long-lived process with a fixed set of threads (a Celery worker, a stream process)
keeps its database connection between units of work; the web's ASGI process opens one per
unit. Checked by MariaDB's own connection ids, on the stream dispatcher's wrapper."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection, connections

from orders.brokers.streams.dispatch import call_with_connection
from trading_site.core.db_router import keep_connections

pytestmark = pytest.mark.django_db(transaction=True)


def connection_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return cursor.fetchone()[0]


def ids_of_two_units_on_one_thread() -> list[int]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        ids = [pool.submit(call_with_connection, connection_id).result() for _ in range(2)]
        pool.submit(connections.close_all).result()
    return ids


@pytest.fixture
def restore_connection_settings():
    saved = {alias: dict(db) for alias, db in settings.DATABASES.items()}
    yield
    for alias, db in settings.DATABASES.items():
        db.clear()
        db.update(saved[alias])


def test_by_default_each_unit_of_work_opens_its_own_connection(restore_connection_settings):
    keep_connections(0)
    first, second = ids_of_two_units_on_one_thread()
    assert first != second


def test_a_kept_connection_serves_the_next_unit_of_work(restore_connection_settings):
    keep_connections(600)
    first, second = ids_of_two_units_on_one_thread()
    assert first == second
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
