"""Steps 5 and 6 on the paper broker: stuck stop-limit entry and stop-loss legs re-priced to
the fair price within the strategy's slippage bound; trailing stop-loss moves."""

from __future__ import annotations

from decimal import Decimal as D
from functools import partial

import pytest

from accounts.models import EntryRegeneratePermission
from monitoring.models import MonitoringRun
from monitoring.pipeline import CycleState, StepFailed
from monitoring.services import run_user_cycle
from monitoring.steps import CycleContext, reprice_entry_legs, reprice_stop_loss_legs
from orders.brokers.paper.models import PaperOrder
from orders.domain.vocabulary import LegStatus
from orders.models import Order, OrderEvent, OrderLeg
from orders.selectors import repricing_anchors
from orders.services import modify_order, place_protective_legs, place_single_order, reprice_leg
from orders.services.trading_lock import lock_trading
from tests.factories import (
    api_client_for,
    make_desk,
    make_strategy,
    place_bracket,
    place_bracket_near_1000,
    set_price_and_match,
    single_request,
    sync_from_broker,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk():
    return make_desk(symbol="TCS", price="990")


def _state(user, account) -> CycleState:
    return CycleState(context=CycleContext(user_id=user.pk, cycle_key="t", accounts=[account]))


def _stop_limit_entry(desk, strategy=None, tp="1100"):
    """BUY 10, a stop-limit entry: stop 1000, limit 1001 (the price is 990); SL 970, TP 1100."""
    user, account, instrument = desk
    return place_bracket(
        user=user,
        account=account,
        instrument=instrument,
        entry="1001",
        stop="1000",
        sl="970",
        tp=tp,
        strategy=strategy,
    )


def _leg(order, role) -> OrderLeg:
    return order.legs.filter(role=role).order_by("-id").first()


def _price_moves(desk, price):
    """The price moves to `price`, the paper exchange matches, and the desk reads the broker."""
    _user, account, instrument = desk
    set_price_and_match(instrument, price)
    sync_from_broker(account)


def _assert_fills_at(desk, leg, price):
    """At `price` the paper exchange fills the repriced `leg`, and the desk reads it filled."""
    _price_moves(desk, price)
    leg.refresh_from_db()
    assert leg.status == OrderLeg.Status.FILLED


def test_stuck_buy_entry_is_repriced_to_the_buy_fair_price_and_then_fills(desk):
    user, account, instrument = desk
    strategy = make_strategy(user=user, max_slippage_pct=D("1"))
    order = _stop_limit_entry(desk, strategy)
    # through the stop, past the limit: triggered, not filled
    _price_moves(desk, "1005")
    entry = _leg(order, OrderLeg.Role.ENTRY)
    assert entry.filled_quantity == 0

    details = reprice_entry_legs(_state(user, account))
    assert details == {"repriced": 1}
    entry.refresh_from_db()
    assert entry.limit_price == D("1005.05")  # buy fair 1005.05, on the tick grid
    assert OrderEvent.objects.filter(leg=entry, kind="leg_repriced").exists()
    _assert_fills_at(desk, entry, "1005")


def test_entry_repricing_stops_at_the_slippage_bound(desk):
    user, account, instrument = desk
    strategy = make_strategy(user=user, max_slippage_pct=D("0.5"))
    order = _stop_limit_entry(desk, strategy)
    _price_moves(desk, "1040")
    reprice_entry_legs(_state(user, account))
    entry = _leg(order, OrderLeg.Role.ENTRY)
    assert entry.limit_price == D("1006.00")  # 1001 + 0.5 % = 1006.005, floored to the tick


def test_entry_repricing_never_runs_past_the_bound_from_the_traders_limit(desk):
    # The bound is the trader's limit on slippage, not a step per cycle: with the market
    # away for good, each minute's re-pricing moved the limit one more bound up (1006, 1011,
    # 1016, ...) until it paid whatever the market asked.
    user, account, instrument = desk
    strategy = make_strategy(user=user, max_slippage_pct=D("0.5"))
    order = _stop_limit_entry(desk, strategy)
    _price_moves(desk, "1040")
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 1}
    for _cycle in range(2):
        assert reprice_entry_legs(_state(user, account)) == {"repriced": 0}
    entry = _leg(order, OrderLeg.Role.ENTRY)
    assert entry.limit_price == D("1006.00")  # 1001 + 0.5 %, however many cycles
    assert OrderEvent.objects.filter(leg=entry, kind="leg_repriced").count() == 1


def test_a_traders_own_new_limit_is_the_bound_from_then_on(desk):
    user, account, instrument = desk
    strategy = make_strategy(user=user, max_slippage_pct=D("0.5"))
    order = _stop_limit_entry(desk, strategy)
    _price_moves(desk, "1040")
    reprice_entry_legs(_state(user, account))  # 1006.00, the bound from 1001
    modify_order(order=order, actor=f"user:{user.pk}", limit_price=D("1020"))
    _price_moves(desk, "1040")
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 1}
    assert _leg(order, OrderLeg.Role.ENTRY).limit_price == D("1025.10")  # 1020 + 0.5 %


def test_entry_repricing_stays_short_of_the_brackets_target(desk):
    # A bracket's entry must stay short of its targets (a trader's modify is refused past
    # them): re-pricing bought at 1011 above the 1005 target, which then sold at a loss.
    user, account, instrument = desk
    strategy = make_strategy(user=user, max_slippage_pct=D("1"))
    order = _stop_limit_entry(desk, strategy, tp="1005")
    _price_moves(desk, "1040")
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 1}
    entry = _leg(order, OrderLeg.Role.ENTRY)
    assert entry.limit_price == D("1004.95")  # one tick short of the target
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 0}


def test_no_entry_is_repriced_on_an_account_the_kill_switch_locked(desk):
    # An entry the kill switch could not cancel stays working on the locked account: step 5
    # went on chasing the market with it, helping open the position the lock was to stop.
    user, account, instrument = desk
    order = _stop_limit_entry(desk, make_strategy(user=user, max_slippage_pct=D("1")))
    _price_moves(desk, "1040")
    lock_trading(account=account, actor="user:test")
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 0}
    assert _leg(order, OrderLeg.Role.ENTRY).limit_price == D("1001")


def test_untriggered_entry_is_left_alone(desk):
    user, account, instrument = desk
    order = _stop_limit_entry(desk)
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 0}
    assert _leg(order, OrderLeg.Role.ENTRY).limit_price == D("1001")


def _protected_long(desk, strategy=None, sl_type="STOPLIMIT"):
    """The bracket near 1000 filled and protected: its stop-loss a STOPLIMIT (stop 980,
    limit 979), or with `sl_type="STOPMARKET"` a stop-market at 979."""
    user, account, instrument = desk
    sl_stop = {"STOPLIMIT": {}, "STOPMARKET": {"sl_stop": None}}[sl_type]
    order = place_bracket_near_1000(
        account=account, instrument=instrument, tp="1100", strategy=strategy, **sl_stop
    )
    sync_from_broker(account)  # the limit buy at 995 fills against 990
    place_protective_legs(account=account)
    sync_from_broker(account)
    sl = _leg(order, OrderLeg.Role.STOP_LOSS)
    assert sl.status == OrderLeg.Status.OPEN and sl.order_type == sl_type
    return order, sl


def test_stuck_stop_loss_is_repriced_down_to_the_sell_fair_price(desk):
    user, account, instrument = desk
    order, sl = _protected_long(desk)
    _price_moves(desk, "976")  # through the 980 stop and below the 979 limit
    sl.refresh_from_db()
    assert sl.filled_quantity == 0
    reprice_stop_loss_legs(_state(user, account))
    sl.refresh_from_db()
    assert sl.limit_price == D("975.95")  # sell fair 975.95
    _assert_fills_at(desk, sl, "976")


def _trail_two_triggers(desk, step, sl_type="STOPLIMIT"):
    """A protected long under a strategy trailing by `step` per trigger of 5: the first
    sight sets the reference, then the price runs two full triggers up and step 6 runs.
    Returns the order, its stop-loss leg (read again) and step 6's details."""
    user, account, instrument = desk
    strategy = make_strategy(
        user=user, trailing_sl_enabled=True, trailing_sl_trigger=D("5"), trailing_sl_step=D(step)
    )
    order, sl = _protected_long(desk, strategy, sl_type)
    reprice_stop_loss_legs(_state(user, account))  # first sight: the reference is set
    sl.refresh_from_db()
    assert sl.trail_reference_price == D("989.95")
    assert sl.stop_price == D("980" if sl_type == "STOPLIMIT" else "979")
    set_price_and_match(
        instrument, "1001"
    )  # sell fair 1000.95: two full triggers above the reference
    details = reprice_stop_loss_legs(_state(user, account))
    sl.refresh_from_db()
    return order, sl, details


def test_trailing_stop_loss_follows_the_price_up_by_steps(desk):
    order, sl, details = _trail_two_triggers(desk, "2")
    assert details["trailed"] == 1
    assert (sl.stop_price, sl.limit_price) == (D("984"), D("983"))
    assert sl.trail_reference_price == D("999.95")
    order.refresh_from_db()  # later stop-loss legs are placed where the trail moved it
    assert (order.sl_stop_price, order.sl_price) == (D("984"), D("983"))
    assert Order.objects.get(pk=order.pk).status in (Order.Status.FILLED, "FILLED")


def test_a_trailing_step_off_the_tick_grid_moves_whole_ticks(desk):
    # One strategy serves instruments of every tick size: a step of 0.03 on this 0.05 tick
    # sent 980.06 to the broker, which refused it every cycle, so the stop never trailed.
    _order, sl, details = _trail_two_triggers(desk, "0.03")  # 0.06: one whole tick
    assert details["trailed"] == 1
    assert (sl.stop_price, sl.limit_price) == (D("980.05"), D("979.05"))


def test_a_stop_market_stop_loss_trails_too(desk):
    # A bracket without an SL trigger price is protected by a stop-market: steps 5 and 6
    # read stop-limit legs only, so the strategy's trailing never moved such a stop-loss.
    _order, sl, details = _trail_two_triggers(desk, "2", sl_type="STOPMARKET")
    assert details["trailed"] == 1
    assert (sl.stop_price, sl.limit_price) == (D("983"), None)


def test_a_broker_refusal_is_reported_as_the_steps_error(desk):
    user, account, instrument = desk
    order, sl = _protected_long(desk)
    _price_moves(desk, "976")
    # The leg was cancelled at the broker behind our back: the modify is refused.
    from asgiref.sync import async_to_sync

    from orders.brokers.sessions import broker_client

    async_to_sync(broker_client(account).cancel_order)(sl.broker_order_id, sl.unique_identifier)
    with pytest.raises(StepFailed) as failure:
        reprice_stop_loss_legs(_state(user, account))
    assert sl.unique_identifier in failure.value.errors[0]


def _cycles(user, count, key):
    """`count` whole monitoring cycles of the user (steps 1-10, the market as it stands):
    each one's stop-loss leg's limit after it."""
    limits = []
    for n in range(count):
        run = run_user_cycle(user_id=user.pk, cycle_key=f"{key}-{n}", trigger="test")
        assert run.status == MonitoringRun.Status.OK, run.steps
        sl = OrderLeg.objects.filter(role=OrderLeg.Role.STOP_LOSS).get()
        assert sl.status == OrderLeg.Status.OPEN and sl.filled_quantity == 0  # still stuck
        limits.append(sl.limit_price)
    return limits


def _on_the_tick_grid(price, tick=D("0.05")):
    return price % tick == 0


def test_a_stuck_stop_loss_never_runs_past_the_bound_from_its_own_limit(desk):
    # Step 6 measured the bound afresh from the limit it had itself moved the cycle before:
    # with the market gone through the stop for good, the stop-loss's limit ran one more
    # bound down every cycle (974.15, 969.30, 964.50, 959.70, ...), selling at whatever it
    # fetched.
    user, account, instrument = desk
    order, sl = _protected_long(desk, make_strategy(user=user, max_slippage_pct=D("0.5")))
    set_price_and_match(instrument, "940")  # through the 980 stop, far below the 979 limit
    limits = _cycles(user, 4, "stuck")
    # 979 - 0.5 % = 974.105, rounded up to the tick (never past the bound): every cycle
    assert limits == [D("974.15")] * 4
    assert all(_on_the_tick_grid(limit) for limit in limits)
    assert OrderEvent.objects.filter(leg=sl, kind="leg_repriced").count() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED  # the position is still open, protected


def test_a_trailed_stop_loss_is_bounded_from_its_trailed_limit(desk):
    # A trail moves the stop and the limit by the trader's own rule: the bound moves with
    # it. Re-pricing moves only the limit: the bound stays where the trail left it.
    user, account, instrument = desk
    strategy = make_strategy(
        user=user,
        max_slippage_pct=D("0.5"),
        trailing_sl_enabled=True,
        trailing_sl_trigger=D("5"),
        trailing_sl_step=D("2"),
    )
    _order, sl = _protected_long(desk, strategy)
    _cycles(user, 1, "sight")  # the first sight sets the trail's reference (989.95)
    set_price_and_match(instrument, "1001")  # two triggers up: stop 984, limit 983
    assert _cycles(user, 1, "trail") == [D("983")]
    set_price_and_match(instrument, "940")  # then the market falls through the stop for good
    limits = _cycles(user, 4, "stuck")
    assert limits == [D("978.10")] * 4  # 983 - 0.5 % = 978.085, up to the tick
    sl.refresh_from_db()
    assert sl.stop_price == D("984")


def test_a_trail_after_a_re_pricing_moves_the_anchor_by_as_much_as_the_stop(desk):
    # Driven through the re-pricing service itself (on the paper exchange): a stop-loss
    # re-priced at once fills on the way back up, so a trail after a re-pricing is rare.
    user, account, _instrument = desk
    _order, sl = _protected_long(desk)
    reprice = partial(reprice_leg, leg_id=sl.pk, account_id=account.pk, actor="monitoring")
    reprice(new_limit_price=D("975"))  # re-priced: the anchor is the limit before, 979
    assert repricing_anchors([sl.pk]) == {sl.pk: D("979")}
    reprice(new_limit_price=D("980"), new_stop_price=D("985"))  # trailed by 5
    assert repricing_anchors([sl.pk]) == {sl.pk: D("984")}
    sl.order.refresh_from_db()  # the bracket's stop-loss: trailed, never re-priced
    assert (sl.order.sl_stop_price, sl.order.sl_price) == (D("985"), D("984"))
    modify_order(order=sl.order, actor=f"user:{user.pk}", leg_id=sl.pk, limit_price=D("978"))
    assert repricing_anchors([sl.pk]) == {}  # the trader's own price: afresh from it


def test_a_stop_loss_placed_again_is_bounded_from_the_traders_limit_not_a_re_priced_one(desk):
    # A re-pricing wrote the stuck leg's new limit onto the bracket (sl_price), where the
    # next stop-loss leg (more fills, or one placed again) took its limit from: that leg's
    # bound then held from the re-priced limit, one more bound down (969.30 from 974.15)
    # every time a stop-loss was placed again.
    user, account, instrument = desk
    order, sl = _protected_long(desk, make_strategy(user=user, max_slippage_pct=D("0.5")))
    set_price_and_match(instrument, "940")
    assert _cycles(user, 1, "stuck") == [D("974.15")]
    # The stuck stop-loss is cancelled at the broker behind our back: step 4 places it again.
    from asgiref.sync import async_to_sync

    from orders.brokers.sessions import broker_client

    async_to_sync(broker_client(account).cancel_order)(sl.broker_order_id, sl.unique_identifier)
    for n in range(3):
        run = run_user_cycle(user_id=user.pk, cycle_key=f"again-{n}", trigger="test")
        assert run.status == MonitoringRun.Status.OK, run.steps
    sl.refresh_from_db()
    again = _leg(order, OrderLeg.Role.STOP_LOSS)
    assert sl.status == OrderLeg.Status.CANCELLED and again.pk != sl.pk
    assert again.status == OrderLeg.Status.OPEN and again.filled_quantity == 0
    assert (again.stop_price, again.limit_price) == (D("980"), D("974.15"))
    first = OrderEvent.objects.filter(leg=again, kind="leg_repriced").get()
    assert D(str(first.before["limit_price"])) == D("979")  # placed at the trader's limit
    order.refresh_from_db()
    assert (order.sl_price, order.sl_stop_price) == (D("979"), D("980"))  # the trader's


def _entry_limits_through_rejections(desk, order, strategy, rejections):
    """Whole cycles with the market through `order`'s stop-limit entry for good: each entry
    re-priced, then rejected by the exchange and regenerated (`rejections` times), then
    re-priced again. The working entry's limit after each re-pricing, and the last order."""
    user, _account, _instrument = desk
    permission = EntryRegeneratePermission.objects.create(user=user, enabled=True)
    permission.strategies.set([strategy])

    def cycle(key):
        run = run_user_cycle(user_id=user.pk, cycle_key=key, trigger="test")
        assert run.status == MonitoringRun.Status.OK, (run.errors, run.steps)

    limits = []
    for n in range(rejections + 1):
        cycle(f"stuck-{n}")  # steps 1 and 5: triggered, not filled, re-priced
        entry = _leg(order, OrderLeg.Role.ENTRY)
        assert (entry.status, entry.filled_quantity) == (OrderLeg.Status.OPEN, 0), entry.status
        limits.append(entry.limit_price)
        if n == rejections:
            break
        # The exchange rejects the working entry (its book says Rejected): the next cycle
        # syncs it (step 3), archives (7), stages (8) and re-places (9) the order.
        PaperOrder.objects.filter(unique_identifier=entry.unique_identifier).update(
            status=LegStatus.REJECTED, reject_reason="Rejected by the exchange"
        )
        cycle(f"rejected-{n}")
        order.refresh_from_db()
        assert (order.status, order.archived_at is not None) == (Order.Status.REJECTED, True)
        order = Order.objects.get(regenerated_from=order)
        assert order.regeneration_count == n + 1
    return limits, order


@pytest.mark.parametrize("kind", ["bracket", "single"])
def test_a_regenerated_entry_is_bounded_from_the_traders_limit_not_a_re_priced_one(desk, kind):
    # A re-pricing wrote the stuck entry's new limit onto the order (limit_price), which
    # regeneration re-places a rejected order at: the regenerated entry's bound then held
    # from the re-priced limit, one more bound up every time it was regenerated (1006,
    # 1011, 1016.05 from the trader's 1001).
    user, account, instrument = desk
    strategy = make_strategy(
        user=user, max_slippage_pct=D("0.5"), allow_regeneration=True, max_regenerations=3
    )
    if kind == "bracket":
        order = _stop_limit_entry(desk, strategy)
    else:
        order = _single_stop_limit_entry(desk, strategy)
    set_price_and_match(instrument, "1040")  # through the 1000 stop, far past the limit
    limits, last = _entry_limits_through_rejections(desk, order, strategy, rejections=2)
    # 1001 + 0.5 % = 1006.005, down to the tick: every entry, however often regenerated
    assert limits == [D("1006.00")] * 3
    for placed in Order.objects.filter(user=user):
        # The trader's prices stay on every order; the working price is the entry leg's.
        assert (placed.limit_price, placed.stop_price) == (D("1001"), D("1000"))
    first = OrderEvent.objects.filter(leg=_leg(last, OrderLeg.Role.ENTRY), kind="leg_repriced")
    assert D(str(first.get().before["limit_price"])) == D("1001")  # placed at the trader's
    # A trader's own modify still sets the order's prices.
    modify_order(order=last, actor=f"user:{user.pk}", limit_price=D("1003"))
    last.refresh_from_db()
    assert (last.limit_price, last.stop_price) == (D("1003"), D("1000"))


def _single_stop_limit_entry(desk, strategy):
    """A single BUY 10 stop-limit entry (stop 1000, limit 1001) under `strategy`."""
    user, account, instrument = desk
    request = single_request(
        account,
        symbol="",
        exchange_instrument_id=instrument.exchange_instrument_id,
        exchange_segment=instrument.exchange_segment,
        order_type="STOPLIMIT",
        stop_price=D("1000"),
        limit_price=D("1001"),
        strategy_name=strategy.name,
    )
    return place_single_order(user=user, request=request).order


def _re_priced_single_stop_limit_entry(desk):
    """`_single_stop_limit_entry` under a 0.5 % slippage bound, the price gone to 1040 for
    good (through the stop, far past the limit), its entry re-priced once: (order, entry)."""
    user, account, _instrument = desk
    order = _single_stop_limit_entry(desk, make_strategy(user=user, max_slippage_pct=D("0.5")))
    _price_moves(desk, "1040")
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 1}
    entry = _leg(order, OrderLeg.Role.ENTRY)
    assert entry.limit_price == D("1006.00")  # 1001 + 0.5 %
    return order, entry


def test_a_quantity_only_modify_keeps_the_traders_price_and_the_bound(desk):
    # A modify without a price took the leg's working (desk re-priced) limit as the trader's
    # new price: onto the order, and the bound afresh from it, one more bound (1011 from
    # 1001) every time the trader touched the quantity.
    user, account, _instrument = desk
    order, entry = _re_priced_single_stop_limit_entry(desk)

    api = api_client_for(user)
    for quantity in (12, 15):
        answer = api.patch(f"/api/orders/{order.pk}", {"quantity": quantity}, format="json")
        assert answer.status_code == 200, answer.content
        entry.refresh_from_db()
        # At the broker it keeps its working price; the order keeps the trader's.
        assert (entry.quantity, entry.limit_price) == (quantity, D("1006.00"))
        order.refresh_from_db()
        assert (order.quantity, order.limit_price, order.stop_price) == (
            quantity,
            D("1001"),
            D("1000"),
        )
        assert repricing_anchors([entry.pk]) == {entry.pk: D("1001")}
        for _cycle in range(2):
            _price_moves(desk, "1040")
            assert reprice_entry_legs(_state(user, account)) == {"repriced": 0}
        entry.refresh_from_db()
        assert entry.limit_price == D("1006.00")  # never past one bound from 1001
    assert OrderEvent.objects.filter(leg=entry, kind="leg_modified").count() == 2

    # A modify that sets a price is the trader's new price, as before.
    answer = api.patch(f"/api/orders/{order.pk}", {"limit_price": "1020"}, format="json")
    assert answer.status_code == 200, answer.content
    order.refresh_from_db()
    assert order.limit_price == D("1020")
    assert repricing_anchors([entry.pk]) == {}
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 1}
    assert _leg(order, OrderLeg.Role.ENTRY).limit_price == D("1025.10")  # 1020 + 0.5 %


def test_a_traders_limit_equal_to_the_working_one_is_their_own_new_price(desk):
    # A PATCH of the limit the desk had re-priced the entry to is the trader taking that
    # price as theirs (the order's limit is set to it): the bound holds from it from then
    # on, as from any other price they give. The anchor stayed at their old 1001, as if the
    # modify had not given a price, so the entry was held at 1006.00 for good.
    user, account, _instrument = desk
    order, entry = _re_priced_single_stop_limit_entry(desk)

    answer = api_client_for(user).patch(
        f"/api/orders/{order.pk}", {"limit_price": "1006.00"}, format="json"
    )

    assert answer.status_code == 200, answer.content
    order.refresh_from_db()
    assert order.limit_price == D("1006.00")
    assert repricing_anchors([entry.pk]) == {}
    _price_moves(desk, "1040")
    assert reprice_entry_legs(_state(user, account)) == {"repriced": 1}
    assert _leg(order, OrderLeg.Role.ENTRY).limit_price == D("1011.00")  # 1006 + 0.5 %


def test_a_stop_only_modify_of_a_re_priced_stop_loss_keeps_the_traders_limit(desk):
    # A new stop without a limit took the leg's re-priced limit as the trader's: onto the
    # bracket (sl_price, where the next stop-loss leg is placed) and the bound afresh from
    # it (969.30 from 974.15). The trader's limit moves only as far as they moved the stop.
    user, account, instrument = desk
    order, sl = _protected_long(desk, make_strategy(user=user, max_slippage_pct=D("0.5")))
    set_price_and_match(instrument, "940")  # through the 980 stop, far below the 979 limit
    assert _cycles(user, 2, "stuck") == [D("974.15")] * 2  # 979 - 0.5 %, up to the tick

    api = api_client_for(user)
    answer = api.patch(
        f"/api/orders/{order.pk}", {"leg_id": sl.pk, "stop_price": "978"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    sl.refresh_from_db()
    assert (sl.stop_price, sl.limit_price) == (D("978"), D("974.15"))  # its working limit
    order.refresh_from_db()
    assert (order.sl_stop_price, order.sl_price) == (D("978"), D("977"))  # the trader's gap
    assert repricing_anchors([sl.pk]) == {sl.pk: D("977")}
    # 977 - 0.5 % = 972.115, up to the tick: the bound from the trader's limit, every cycle
    assert _cycles(user, 3, "after") == [D("972.15")] * 3
