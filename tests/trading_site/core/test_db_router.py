"""Read replicas: reporting reads may go to the replica; everything else stays on the primary."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.test import override_settings

from monitoring.selectors import monitoring_runs_for
from orders.tradebook.selectors import TradeFilters, trade_list
from pnl.selectors import pnl_days_for
from tests.factories import make_account
from trading_site.core.db_router import PrimaryReplicaRouter, reporting_alias


@contextmanager
def _quietly_overriding_databases():
    # Django warns that its open connections do not follow a DATABASES override; these tests
    # only ask which alias reporting reads choose and never open the replica.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Overriding setting DATABASES", UserWarning)
        yield


@pytest.fixture
def with_replica():
    replica = override_settings(
        DATABASES={**settings.DATABASES, "replica": dict(settings.DATABASES["default"])}
    )
    with _quietly_overriding_databases():
        replica.enable()
    yield
    with _quietly_overriding_databases():
        replica.disable()


def test_without_a_replica_reporting_reads_use_the_primary():
    assert reporting_alias() == "default"


def test_with_a_replica_reporting_reads_use_it(with_replica):
    assert reporting_alias() == "replica"


@pytest.mark.django_db
def test_pnl_history_cycle_history_and_the_trade_book_are_routed_to_the_replica(with_replica):
    account = make_account()
    assert pnl_days_for(account=account).db == "replica"
    assert monitoring_runs_for(user=account.user).db == "replica"
    assert trade_list(user=account.user, filters=TradeFilters()).db == "replica"


@pytest.mark.django_db
def test_the_trade_book_stays_on_the_primary_without_a_replica():
    account = make_account()
    assert trade_list(user=account.user, filters=TradeFilters()).db == "default"


def test_writes_and_migrations_only_ever_touch_the_primary():
    router = PrimaryReplicaRouter()
    assert router.db_for_write(object) == "default"
    assert router.db_for_read(object) is None  # ordinary reads: the primary
    assert router.allow_migrate("default", "orders") is True
    assert router.allow_migrate("replica", "orders") is False
