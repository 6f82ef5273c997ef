"""Steps 7-9: rejected orders are archived (never deleted), and re-placed only for permitted
strategies, under their regeneration limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import EntryRegeneratePermission
from orders.models import Order, OrderEvent, RegenerationStage
from orders.services.broker_calls import NOT_SENT_PREFIX
from orders.services.regeneration import (
    archive_rejected_orders,
    place_regenerations,
    regeneration_permitted,
    regeneration_strategy_ids,
    stage_regenerations,
)
from tests.factories import (
    make_desk,
    make_order,
    make_strategy,
    make_user,
    place_bracket_the_broker_rejects,
    sync_from_broker,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(settings):
    user, account, instrument = make_desk(symbol="RELIANCE")
    strategy = make_strategy(user=user, allow_regeneration=True, max_regenerations=2)
    return user, account, instrument, strategy


def _rejected_bracket(settings, desk):
    user, account, instrument, strategy = desk
    order = place_bracket_the_broker_rejects(
        settings, account=account, instrument=instrument, strategy=strategy
    )
    sync_from_broker(account)
    order.refresh_from_db()
    assert order.status == Order.Status.REJECTED
    return order


def _permit(user, *strategies, enabled=True):
    permission = EntryRegeneratePermission.objects.create(user=user, enabled=enabled)
    permission.strategies.set(strategies)
    return permission


def _staged_once_permitted(user, strategy) -> list:
    """What step 8 stages in a cycle once `strategy` is permitted (rejections archived first)."""
    _permit(user, strategy)
    archive_rejected_orders(user_id=user.pk)
    return stage_regenerations(user_id=user.pk, cycle_key="c1")


def test_the_permitted_strategies_are_the_users_own_that_allow_regeneration(desk):
    user, _account, _instrument, allowed = desk
    forbidding = make_strategy(user=user, allow_regeneration=False)
    someone_elses = make_strategy(user=make_user(), allow_regeneration=True)
    also_allowed = make_strategy(user=user, allow_regeneration=True)
    not_in_the_permission = make_strategy(user=user, allow_regeneration=True)
    assert regeneration_strategy_ids(user_id=user.pk) == []  # no permission yet
    permission = _permit(user, allowed, forbidding, someone_elses, also_allowed)
    assert not_in_the_permission.pk not in regeneration_strategy_ids(user_id=user.pk)
    assert regeneration_strategy_ids(user_id=user.pk) == sorted([allowed.pk, also_allowed.pk])
    assert regeneration_strategy_ids(user_id=someone_elses.user_id) == []
    permission.enabled = False
    permission.save()
    assert regeneration_strategy_ids(user_id=user.pk) == []


def test_rejected_order_is_archived_with_an_audit_event_and_kept(settings, desk):
    order = _rejected_bracket(settings, desk)
    assert archive_rejected_orders(user_id=order.user_id) == [order.pk]
    order.refresh_from_db()
    assert order.archived_at is not None
    assert OrderEvent.objects.filter(order=order, kind="archived", actor="monitoring").exists()
    assert archive_rejected_orders(user_id=order.user_id) == []
    assert Order.objects.filter(pk=order.pk).exists()


def test_without_permission_nothing_is_staged(settings, desk):
    order = _rejected_bracket(settings, desk)
    archive_rejected_orders(user_id=order.user_id)
    assert not regeneration_permitted(user_id=order.user_id)
    assert stage_regenerations(user_id=order.user_id, cycle_key="c1") == []


def test_disabled_permission_is_not_permission(settings, desk):
    user, _account, _instrument, strategy = desk
    _permit(user, strategy, enabled=False)
    assert not regeneration_permitted(user_id=user.pk)


def test_permitted_rejected_order_is_staged_once_and_placed_as_a_regeneration(settings, desk):
    user, _account, _instrument, strategy = desk
    order = _rejected_bracket(settings, desk)
    _permit(user, strategy)
    archive_rejected_orders(user_id=user.pk)
    [stage] = stage_regenerations(user_id=user.pk, cycle_key="c1")
    assert stage.source_order_id == order.pk and stage.status == RegenerationStage.Status.STAGED
    assert stage_regenerations(user_id=user.pk, cycle_key="c2") == []

    result = place_regenerations(user_id=user.pk)
    assert result.errors == []
    [new_id] = result.placed
    new = Order.objects.get(pk=new_id)
    assert new.source == Order.Source.REGENERATED
    assert new.regenerated_from_id == order.pk
    assert new.regeneration_count == 1
    assert new.status == Order.Status.OPEN
    stage.refresh_from_db()
    assert stage.status == RegenerationStage.Status.PLACED and stage.new_order_id == new_id
    # Placing again (a redelivered step 9) finds nothing staged and places nothing.
    assert place_regenerations(user_id=user.pk).placed == []


def test_order_at_its_regeneration_limit_is_not_staged(settings, desk):
    user, _account, _instrument, strategy = desk
    order = _rejected_bracket(settings, desk)
    Order.objects.filter(pk=order.pk).update(regeneration_count=strategy.max_regenerations)
    assert _staged_once_permitted(user, strategy) == []


def test_an_order_rejected_on_an_earlier_trading_day_is_not_staged(settings, desk):
    # Re-placing last week's entry at last week's prices (the permission enabled today, or
    # a rejection at the close regenerated at the next open) is an order the trader never
    # asked for today: regeneration re-places the day's own rejections only.
    user, _account, _instrument, strategy = desk
    order = _rejected_bracket(settings, desk)
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(days=3))
    assert _staged_once_permitted(user, strategy) == []
    assert place_regenerations(user_id=user.pk).placed == []


@pytest.mark.parametrize("source", [Order.Source.MANUAL, Order.Source.OPENALGO])
def test_an_order_a_client_was_told_to_send_again_is_not_regenerated(desk, source):
    # Not sent, the client was answered "send it again" (the API's 503 BROKER_UNAVAILABLE,
    # OpenAlgo's 503 NOT_SENT) and re-sends it: regenerating it too placed it twice.
    user, account, instrument, strategy = desk
    order = make_order(
        account=account,
        instrument=instrument,
        status=Order.Status.REJECTED,
        source=source,
        strategy=strategy,
        entry_broker_order_id="",
    )
    order.legs.update(reject_reason=NOT_SENT_PREFIX + "the broker could not be reached")
    assert _staged_once_permitted(user, strategy) == []


def test_strategy_that_forbids_regeneration_is_not_staged(settings, desk):
    user, _account, _instrument, strategy = desk
    order = _rejected_bracket(settings, desk)
    strategy.allow_regeneration = False
    strategy.save()
    assert _staged_once_permitted(user, strategy) == []
    assert order.pk  # still there, archived


def test_rejected_regeneration_is_regenerated_again_until_the_limit(settings, desk):
    user, account, _instrument, strategy = desk
    _rejected_bracket(settings, desk)
    _permit(user, strategy)
    for cycle in ("c1", "c2", "c3"):
        archive_rejected_orders(user_id=user.pk)
        stage_regenerations(user_id=user.pk, cycle_key=cycle)
        settings.PAPER_REJECT_RATE = "1"
        place_regenerations(user_id=user.pk)
        settings.PAPER_REJECT_RATE = "0"
        sync_from_broker(account)
    counts = sorted(Order.objects.filter(user=user).values_list("regeneration_count", flat=True))
    assert counts == [0, 1, 2]  # max_regenerations=2: the third rejection is not re-placed
