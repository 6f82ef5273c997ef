"""The broker holding less of a position than the desk's brackets (a trade in the broker's own
terminal, its risk system squaring off): no exit, stop-loss or target the kill switch, a
position exit or a position change places exceeds what the broker holds. A stop-loss of the
desk's 10 over the broker's 4 would, once it triggered, sell 6 the trader never held: a
short position opened by the protection itself. Each cut is audited (the desk held X, the
broker Y) and told to the trader.

Over the XTS simulator: a bracket BUY 10 RELIANCE, protected (stop-loss and target 10); then
a sale in the broker's own terminal leaves the broker holding less."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey
from monitoring.services import run_user_cycle
from orders.models import Order, OrderEvent
from orders.openalgo.mapping import PositionChange
from orders.services import place_protective_legs
from orders.services.kill_switch import kill_switch
from orders.services.position_changes import change_position_live
from tests.factories import (
    ALL_10_PROTECTED,
    a_minute_passes,
    api_client_for,
    assert_working_protection,
    exit_body,
    flatten_smart_order_body,
    legs_of,
    net_at_the_broker,
    place_bracket,
    sell_by_position_change,
    set_price_and_match,
    sync_from_broker,
    trade_at_the_broker,
    working_protection,
    working_protection_at_the_broker,
)
from tests.servers import SIM_CANCEL_ROUTE, SIM_POSITIONS_ROUTE

pytestmark = pytest.mark.django_db(transaction=True)

FOUR = [("STOP_LOSS", 4), ("TAKE_PROFIT", 4)]
REFUSE_THE_NEXT_ORDER = {"reject_next": 1, "routes": ["POST /interactive/orders"]}


def _sized_event(bracket: Order) -> OrderEvent:
    return OrderEvent.objects.get(order=bracket, kind="exit_sized_to_broker")


def _a_cycle_later_still(account, bracket, protection) -> None:
    """The next cycles keep `protection`: none grows it back to the desk's 10."""
    for _ in range(2):
        sync_from_broker(account)
        place_protective_legs(account=account)
    assert_working_protection(account, bracket, protection)


def test_a_kill_switch_exit_refused_protects_only_what_the_broker_holds(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 6)
    assert net_at_the_broker(account, stock) == 4
    simulator.set_faults(**REFUSE_THE_NEXT_ORDER)  # the exit of 4

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    assert [(leg.quantity, leg.status) for leg in legs_of(bracket, "EXIT")] == [(4, "REJECTED")]
    # Placed again for the broker's 4, not the desk's 10 (a sell of 10 would open 6 short).
    assert_working_protection(account, bracket, FOUR)
    assert result.protected_order_ids == [bracket.pk]
    assert "the desk held 10, the broker 4" in result.summary
    assert "sized to 4" in result.summary
    event = _sized_event(bracket)
    assert "the desk held 10" in event.message and "the broker 4" in event.message
    assert event.after == {"broker_shortfall": 6}
    _a_cycle_later_still(account, bracket, FOUR)


def test_a_kill_switch_over_a_broker_holding_none_places_nothing(simulator, protected_bracket):
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 10)
    assert net_at_the_broker(account, stock) == 0

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    assert legs_of(bracket, "EXIT") == []
    assert working_protection(bracket) == []
    assert "the desk held 10, the broker 0" in result.summary
    _a_cycle_later_still(account, bracket, [])
    assert net_at_the_broker(account, stock) == 0


def test_a_position_exit_refused_protects_only_what_the_broker_holds(simulator, protected_bracket):
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 6)
    simulator.set_faults(**REFUSE_THE_NEXT_ORDER)

    answer = api_client_for(user).post(
        "/api/positions/exit", exit_body(account, stock), format="json"
    )

    body = answer.json()
    assert body["protected_order_ids"] == [bracket.pk], body
    assert_working_protection(account, bracket, FOUR)
    assert body["sized_to_broker"] == [
        f"RELIANCE (order {bracket.pk}): the desk held 10, the broker 4; its exits, "
        "stop-loss and targets sized to 4"
    ]
    assert "position exit: the desk held 10" in _sized_event(bracket).message
    _a_cycle_later_still(account, bracket, FOUR)


def test_a_position_change_over_less_at_the_broker_leaves_no_stop_loss_beyond_it(
    simulator, protected_bracket
):
    # Today the bracket's exit of 4 was a partial one: its stop-loss and target of 10 kept
    # working, trimmed to the desk's 6 once the exit filled: 6 to sell at the broker, which
    # then held none.
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 6)

    live = sell_by_position_change(user, account, stock)

    assert live.current == 4
    assert [leg.quantity for leg in live.result.exit_legs] == [4]
    assert live.result.errors == []
    sync_from_broker(account)  # the exit filled
    place_protective_legs(account=account)
    assert net_at_the_broker(account, stock) == 0
    assert_working_protection(account, bracket, [])
    _a_cycle_later_still(account, bracket, [])
    assert "the desk held 10, the broker 4" in live.result.protection.sized_words


def test_a_position_change_refused_protects_only_what_the_broker_holds(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 6)
    simulator.set_faults(**REFUSE_THE_NEXT_ORDER)

    live = sell_by_position_change(user, account, stock)

    assert [leg.status for leg in live.result.exit_legs] == ["REJECTED"]
    assert_working_protection(account, bracket, FOUR)
    assert live.result.protection.protected_order_ids == [bracket.pk]
    _a_cycle_later_still(account, bracket, FOUR)


def test_a_position_change_over_a_position_held_the_other_way_cancels_the_protection(
    simulator, protected_bracket
):
    # The broker is short 3 (the trader sold 13 in its terminal): the desk's long bracket's
    # stop-loss and target, sells of 10, would make it short 13. Flattening buys the 3 back
    # and leaves no sell working.
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 13)

    live = change_position_live(
        account=account,
        instrument=stock,
        product_type="MIS",
        decide=lambda current: PositionChange(side="BUY", quantity=-current),
        user=user,
        actor=f"user:{user.pk}",
        source=Order.Source.OPENALGO,
    )

    assert live.current == -3
    assert live.result.placement is not None
    assert live.result.placement.order.quantity == 3
    assert_working_protection(account, bracket, [])
    assert "the desk held 10, the broker 0" in live.result.protection.sized_words
    sync_from_broker(account)
    assert net_at_the_broker(account, stock) == 0
    _a_cycle_later_still(account, bracket, [])


def test_placesmartorder_answers_that_the_exit_was_sized_to_the_broker(
    simulator, protected_bracket
):
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 6)
    key, _ = create_api_key(user=user, name="algo", scope=ApiKey.Scope.TRADE, bound_account=account)

    answer = APIClient().post(
        "/api/v1/placesmartorder",
        flatten_smart_order_body(key),
        format="json",
    )

    body = answer.json()
    assert answer.status_code == 200, body
    assert body["quantity"] == 4
    assert [leg.quantity for leg in legs_of(bracket, "EXIT")] == [4]
    assert working_protection(bracket) == []  # cancelled: the exit closes all it holds
    assert (
        f"RELIANCE (order {bracket.pk}): the desk held 10, the broker 4; its exits, "
        "stop-loss and targets sized to 4" in body["message"]
    )


def test_positions_unreadable_after_the_cancels_protect_the_desks_position_and_say_so(
    simulator, protected_bracket, monkeypatch
):
    # The first read (before the stop-loss is cancelled) answers; the second, which the
    # exits would be measured from, fails: the stop-loss and target are placed again as
    # before, for the desk's 10, and the trader is told that the broker's could not be read.
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 6)
    simulator.fail_after_answering(
        SIM_CANCEL_ROUTE, failing=[SIM_POSITIONS_ROUTE], monkeypatch=monkeypatch
    )

    result = kill_switch(account=account, actor=f"user:{user.pk}")

    assert legs_of(bracket, "EXIT") == []
    assert working_protection(bracket) == ALL_10_PROTECTED
    assert result.protected_order_ids == [bracket.pk]
    assert (
        "stop-loss and targets placed again, for the desk's own position (the broker's "
        "positions could not be read)" in result.summary
    )
    kept = OrderEvent.objects.get(order=bracket, kind="kill_switch_protection_kept")
    assert "the broker's positions could not be read" in kept.message


def _covered(protection: list[tuple[str, int]]) -> dict[str, int]:
    """What the stop-loss legs and the target legs cover in all, by role."""
    covered: dict[str, int] = {}
    for role, quantity in protection:
        covered[role] = covered.get(role, 0) + quantity
    return covered


def _short_of_6(simulator, protected_bracket) -> Order:
    """6 sold in the broker's terminal, then a position exit (refused, so that the bracket
    stays) measures the bracket: its shortfall 6, its stop-loss and target trimmed to the
    broker's 4. Then the desk's next look at the broker's order book (its new legs' first
    sight), and a minute."""
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", 6)
    simulator.set_faults(**REFUSE_THE_NEXT_ORDER)
    api_client_for(user).post("/api/positions/exit", exit_body(account, stock), format="json")
    bracket.refresh_from_db()
    assert bracket.broker_shortfall == 6
    assert working_protection(bracket) == FOUR
    sync_from_broker(account)
    a_minute_passes(account)
    return bracket


def _a_cycle(user, key: str, bracket: Order) -> Order:
    """One monitoring cycle; the bracket as it left it."""
    run = run_user_cycle(user_id=user.pk, cycle_key=key, trigger="test")
    assert run.status == "OK", (run.errors, run.steps)
    bracket.refresh_from_db()
    return bracket


def _short_of_6_then_a_cycle(simulator, protected_bracket, side: str, quantity: int) -> Order:
    """`_short_of_6`, then `side` `quantity` traded in the terminal, and one monitoring
    cycle. Returns the bracket as the cycle left it."""
    user, account, stock, bracket = protected_bracket
    _short_of_6(simulator, protected_bracket)
    trade_at_the_broker(account, stock, side, quantity)
    held = 4 + quantity if side == "BUY" else 4 - quantity
    assert net_at_the_broker(account, stock) == held

    return _a_cycle(user, f"{side}-{quantity}", bracket)


def _sized_events(bracket: Order) -> list[OrderEvent]:
    return list(
        OrderEvent.objects.filter(order=bracket, kind="exit_sized_to_broker").order_by("id")
    )


def test_a_cycle_after_a_buy_back_at_the_broker_protects_the_whole_position_again(
    simulator, protected_bracket
):
    # Today the recorded shortfall stood until an exit path measured again: the bracket's
    # 10 held at the broker again, its stop-loss covered 4 of them all day.
    bracket = _short_of_6_then_a_cycle(simulator, protected_bracket, "BUY", 6)

    account = protected_bracket[1]
    assert bracket.broker_shortfall == 0
    assert _covered(working_protection(bracket)) == {"STOP_LOSS": 10, "TAKE_PROFIT": 10}
    assert _covered(working_protection_at_the_broker(account, bracket)) == {
        "STOP_LOSS": 10,
        "TAKE_PROFIT": 10,
    }
    lowered = _sized_events(bracket)[-1]
    assert lowered.actor == "monitoring"
    assert (lowered.before, lowered.after) == ({"broker_shortfall": 6}, {"broker_shortfall": 0})
    assert "the broker 10" in lowered.message


def test_a_cycle_seeing_the_broker_hold_less_leaves_the_shortfall_and_protection(
    simulator, protected_bracket
):
    # The cycle only lowers a shortfall: a positions read showing less (lagging the order
    # book, or another sale in the terminal) never strips protection there; an exit path
    # measures it.
    bracket = _short_of_6_then_a_cycle(simulator, protected_bracket, "SELL", 2)

    assert bracket.broker_shortfall == 6
    assert working_protection(bracket) == FOUR
    assert working_protection_at_the_broker(protected_bracket[1], bracket) == FOUR
    assert _sized_events(bracket) != []  # the position exit's
    assert all(event.actor != "monitoring" for event in _sized_events(bracket))


def _the_desks_exit_of_2_behind_positions_held_at_4(simulator, protected_bracket, monkeypatch):
    """`_short_of_6`; then the broker's positions lag its order book (held at its 4) while
    the desk's own exit of 2 (a position change) fills there: the broker holds 2. Returns
    the function that lets the positions catch up."""
    user, account, stock, bracket = protected_bracket
    _short_of_6(simulator, protected_bracket)
    catch_up = simulator.hold_positions(monkeypatch=monkeypatch)
    assert net_at_the_broker(account, stock) == 4  # the answer held from now on

    live = sell_by_position_change(user, account, stock, 2)

    assert [leg.quantity for leg in live.result.exit_legs] == [2]
    assert net_at_the_broker(account, stock) == 4  # the fill of 2 not in the positions
    return catch_up


def _only_what_the_broker_holds_is_protected(account, stock, bracket, catch_up) -> None:
    """The broker's positions caught up: it holds 2, the bracket's stop-loss and targets
    cover no more (the desk's 8 less its shortfall of 6)."""
    catch_up()
    assert net_at_the_broker(account, stock) == 2
    assert bracket.broker_shortfall == 6
    assert _covered(working_protection(bracket)) == {"STOP_LOSS": 2, "TAKE_PROFIT": 2}
    assert _covered(working_protection_at_the_broker(account, bracket)) == {
        "STOP_LOSS": 2,
        "TAKE_PROFIT": 2,
    }
    assert all(event.actor != "monitoring" for event in _sized_events(bracket))


def test_a_cycle_whose_positions_lag_its_own_sync_of_the_desks_exit_lowers_nothing(
    simulator, protected_bracket, monkeypatch
):
    # The exit went out a minute ago; the cycle's order book shows its fill, its positions
    # (lagging) do not. Measured from them, the desk's 8 over the broker's 4 looked like a
    # buy back of 2: the shortfall lowered to 4 and the stop-loss topped up to 4 over the
    # broker's 2, a short of 2 once it triggered.
    user, account, stock, bracket = protected_bracket
    catch_up = _the_desks_exit_of_2_behind_positions_held_at_4(
        simulator, protected_bracket, monkeypatch
    )
    a_minute_passes(account)

    bracket = _a_cycle(user, "lagging", bracket)

    assert legs_of(bracket, "EXIT")[-1].filled_quantity == 2  # recorded by the cycle's sync
    _only_what_the_broker_holds_is_protected(account, stock, bracket, catch_up)


def test_a_cycle_whose_positions_lag_a_fill_recorded_moments_before_lowers_nothing(
    simulator, protected_bracket, monkeypatch
):
    # The desk recorded the exit's fill (its order book, a broker event) just before the
    # cycle read the positions, which the broker had not applied it to yet.
    user, account, stock, bracket = protected_bracket
    catch_up = _the_desks_exit_of_2_behind_positions_held_at_4(
        simulator, protected_bracket, monkeypatch
    )
    sync_from_broker(account)
    assert legs_of(bracket, "EXIT")[-1].filled_quantity == 2

    bracket = _a_cycle(user, "moments-after", bracket)

    _only_what_the_broker_holds_is_protected(account, stock, bracket, catch_up)


def test_the_next_cycle_lowers_the_shortfall_only_when_the_broker_holds_more(
    simulator, protected_bracket, monkeypatch
):
    user, account, stock, bracket = protected_bracket
    catch_up = _the_desks_exit_of_2_behind_positions_held_at_4(
        simulator, protected_bracket, monkeypatch
    )
    a_minute_passes(account)
    _a_cycle(user, "lagging", bracket)
    catch_up()
    a_minute_passes(account)

    # Positions that agree with the order book: the broker holds 2 of the desk's 8.
    bracket = _a_cycle(user, "caught-up", bracket)

    assert bracket.broker_shortfall == 6
    assert _covered(working_protection(bracket)) == {"STOP_LOSS": 2, "TAKE_PROFIT": 2}

    # A buy back of 3 in the terminal: the broker holds 5 of the 8.
    trade_at_the_broker(account, stock, "BUY", 3)
    a_minute_passes(account)
    bracket = _a_cycle(user, "bought-back", bracket)

    assert bracket.broker_shortfall == 3
    assert _covered(working_protection(bracket)) == {"STOP_LOSS": 5, "TAKE_PROFIT": 5}
    assert _covered(working_protection_at_the_broker(account, bracket)) == {
        "STOP_LOSS": 5,
        "TAKE_PROFIT": 5,
    }
    lowered = _sized_events(bracket)[-1]
    assert lowered.actor == "monitoring"
    assert (lowered.before, lowered.after) == ({"broker_shortfall": 6}, {"broker_shortfall": 3})


def test_an_exit_on_one_bracket_behind_lagging_positions_lowers_no_other_of_its_position(
    simulator, protected_bracket, monkeypatch
):
    # Brackets of one position share what the broker holds (the newest short first): the
    # older bracket's exit of 2, missing from the positions, made the newer one, whose own
    # legs did not change, look bought back too.
    user, account, stock, older = protected_bracket
    newer = place_bracket(
        user=user, account=account, instrument=stock, entry="99", sl="95", tp="110", lots=5
    )
    set_price_and_match(stock, "98.50")
    sync_from_broker(account)
    place_protective_legs(account=account)
    trade_at_the_broker(account, stock, "SELL", 6)  # the broker holds 9 of the desk's 15
    simulator.set_faults(**REFUSE_THE_NEXT_ORDER)
    api_client_for(user).post("/api/positions/exit", exit_body(account, stock), format="json")
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.broker_shortfall, newer.broker_shortfall) == (1, 5)
    sync_from_broker(account)
    a_minute_passes(account)
    catch_up = simulator.hold_positions(monkeypatch=monkeypatch)
    assert net_at_the_broker(account, stock) == 9
    live = sell_by_position_change(user, account, stock, 2)  # the older bracket's exit
    assert [(leg.order_id, leg.quantity) for leg in live.result.exit_legs] == [(older.pk, 2)]
    a_minute_passes(account)

    _a_cycle(user, "lagging", older)

    newer.refresh_from_db()
    assert (older.broker_shortfall, newer.broker_shortfall) == (1, 5)
    catch_up()
    assert net_at_the_broker(account, stock) == 7
    covered = [_covered(working_protection(bracket)) for bracket in (older, newer)]
    assert covered == [{"STOP_LOSS": 7, "TAKE_PROFIT": 7}, {}]
