"""Primary/replica routing (SPEC 2: read replicas through a database router), and how long
a long-lived process keeps its database connections.

Every write, and every ordinary read, goes to the primary (`default`): a trader must see
an order the moment it is placed, and a replica may lag. Read-only reporting querysets
(daily PnL history, monitoring-run history) opt in with `.using(reporting_alias())`, which
is the replica when `DATABASE_REPLICA_URL` configures one and the primary otherwise.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPLICA_ALIAS = "replica"


def reporting_alias() -> str:
    """The database alias for read-only reporting queries."""
    return REPLICA_ALIAS if REPLICA_ALIAS in settings.DATABASES else DEFAULT_DB_ALIAS


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        return None  # the primary, unless a queryset chose the replica with .using()

    def db_for_write(self, model, **hints):
        # Even an object read from the replica is saved to the primary.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replica holds the same rows as the primary.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


def keep_connections(max_age: int) -> None:
    """Keep this process's database connections `max_age` seconds between units of work,
    health-checked before reuse. For processes with a fixed set of threads (a Celery worker,
    a `run_broker_streams` process): opening a MariaDB connection costs more than a short
    task's or a broker event's own queries. The ASGI web process must not (one connection
    per thread it ever ran: settings, CONN_MAX_AGE). Call it before the threads' first
    query; each unit of work is still wrapped in `close_old_connections()`, which replaces a
    connection that errored or outlived `max_age`."""
    for database in settings.DATABASES.values():
        database["CONN_MAX_AGE"] = max_age
        database["CONN_HEALTH_CHECKS"] = True
