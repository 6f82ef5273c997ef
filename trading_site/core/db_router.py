"""Primary/replica routing (SPEC 2: read replicas through a database router).

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
