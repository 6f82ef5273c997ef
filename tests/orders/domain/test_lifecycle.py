"""The leg lifecycle's table: every allowed move, every refused one, and its invariants
(final states stay final but for a fill, fills never shrink), with no database."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.domain.lifecycle import (
    FINAL_STATUSES,
    INITIAL_STATUS,
    TRANSITIONS,
    IllegalTransition,
    LegEvent,
    LegEventKind,
    LegState,
    apply_event,
    reported,
)
from orders.domain.vocabulary import LegStatus

E = LegEventKind
S = LegStatus
WORKING = (S.OPEN, S.PARTIALLY_FILLED)
QUANTITY = 10


def _state(status: LegStatus, filled: int | None = None) -> LegState:
    if filled is None:
        filled = 4 if status in (S.PARTIALLY_FILLED,) else (QUANTITY if status == S.FILLED else 0)
    return LegState(status=status, quantity=QUANTITY, filled_quantity=filled)


def _event(kind: LegEventKind, state: LegState) -> LegEvent:
    """The event as a source would send it, bringing no new fills unless it is a fill."""
    if kind == E.FILL:
        return LegEvent(kind, filled_quantity=min(state.filled_quantity + 1, QUANTITY - 1))
    if kind == E.MODIFY_ACCEPTED:
        return LegEvent(kind, quantity=QUANTITY + 5)
    return LegEvent(kind, filled_quantity=state.filled_quantity)


@pytest.mark.parametrize(
    ("status", "kind"), sorted(TRANSITIONS), ids=lambda v: str(getattr(v, "value", v))
)
def test_every_allowed_pair_moves_the_leg_to_the_table_target(status, kind):
    state = _state(status)
    after = apply_event(state, _event(kind, state))
    assert after.status == TRANSITIONS[(status, kind)]


DISALLOWED = sorted(
    (status, kind)
    for status, kind in itertools.product(LegStatus, LegEventKind)
    if (status, kind) not in TRANSITIONS
)


@pytest.mark.parametrize(("status", "kind"), DISALLOWED, ids=lambda v: str(v.value))
def test_every_disallowed_pair_raises_illegal_transition(status, kind):
    state = _state(status)
    with pytest.raises(IllegalTransition) as refused:
        apply_event(state, _event(kind, state))
    assert refused.value.state == state and refused.value.event.kind == kind


def test_the_table_refuses_the_moves_that_matter():
    """Spelled out, so a table edit that allows one of these fails here by name."""
    refused = {
        (S.REJECTED, E.REPORTED_CANCELLED),  # a rejection is not a cancellation
        (S.CANCELLED, E.REPORTED_REJECTED),
        (S.FILLED, E.REPORTED_CANCELLED),  # a fill cannot be undone
        (S.FILLED, E.CANCEL_CONFIRMED),  # our cancel came too late: the fill won
        (S.FILLED, E.REPORTED_OPEN),  # a stale row never reopens a final leg
        (S.CANCELLED, E.REPORTED_OPEN),
        (S.REJECTED, E.REPORTED_OPEN),
        (S.PENDING_SUBMIT, E.CANCEL_CONFIRMED),  # nothing to cancel before the broker has it
        (S.PENDING_SUBMIT, E.MODIFY_ACCEPTED),
        (S.REJECTED, E.SUBMIT_ACCEPTED),
        (S.OPEN, E.NOT_FOUND_AFTER_GRACE),
    }
    assert refused <= set(DISALLOWED)


def test_a_leg_starts_pending_and_the_broker_answer_moves_it():
    start = LegState(status=INITIAL_STATUS, quantity=QUANTITY)
    assert apply_event(start, LegEvent(E.SUBMIT_ACCEPTED)).status == S.OPEN
    assert apply_event(start, LegEvent(E.SUBMIT_REJECTED)).status == S.REJECTED
    # No answer: the leg stays pending for the order book to settle (never re-sent).
    assert apply_event(start, LegEvent(E.SUBMIT_OUTCOME_UNKNOWN)).status == S.PENDING_SUBMIT
    assert apply_event(start, LegEvent(E.NOT_FOUND_AFTER_GRACE)).status == S.REJECTED


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_final_states_are_final_but_for_a_fill(final):
    """From a final state the only way out is FILLED, and only through a fill."""
    for kind in LegEventKind:
        state = _state(final)
        try:
            after = apply_event(state, _event(kind, state))
        except IllegalTransition:
            continue
        assert after.status == final or (
            after.status == S.FILLED and kind in (E.REPORTED_FILLED, E.FILL)
        ), kind


def test_a_fill_that_raced_our_cancel_wins():
    cancelled = LegState(status=S.CANCELLED, quantity=QUANTITY, filled_quantity=0)
    after = apply_event(cancelled, reported(S.FILLED, filled_quantity=QUANTITY, quantity=QUANTITY))
    assert (after.status, after.filled_quantity) == (S.FILLED, QUANTITY)


def test_a_late_partial_fill_keeps_the_leg_cancelled_with_its_fills():
    cancelled = LegState(status=S.CANCELLED, quantity=QUANTITY, filled_quantity=2)
    row = reported(S.PARTIALLY_FILLED, filled_quantity=6, quantity=QUANTITY)
    after = apply_event(cancelled, row)
    assert (after.status, after.filled_quantity) == (S.CANCELLED, 6)


def test_a_stale_partial_row_without_new_fills_is_refused_on_a_cancelled_leg():
    cancelled = LegState(status=S.CANCELLED, quantity=QUANTITY, filled_quantity=6)
    with pytest.raises(IllegalTransition, match="final"):
        apply_event(cancelled, reported(S.PARTIALLY_FILLED, filled_quantity=6, quantity=QUANTITY))


def test_a_fill_completing_the_quantity_fills_the_leg():
    working = LegState(status=S.OPEN, quantity=QUANTITY)
    assert apply_event(working, LegEvent(E.FILL, filled_quantity=3)).status == S.PARTIALLY_FILLED
    assert apply_event(working, LegEvent(E.FILL, filled_quantity=QUANTITY)).status == S.FILLED


def test_fills_never_shrink_and_the_same_fill_told_twice_changes_nothing():
    partly = LegState(status=S.PARTIALLY_FILLED, quantity=QUANTITY, filled_quantity=6)
    older_row = reported(S.PARTIALLY_FILLED, filled_quantity=2, quantity=QUANTITY)
    assert apply_event(partly, older_row).filled_quantity == 6
    assert apply_event(partly, LegEvent(E.FILL, filled_quantity=6)) == partly
    # An OPEN row older than our fills leaves the leg partially filled.
    assert apply_event(partly, reported(S.OPEN, filled_quantity=0, quantity=QUANTITY)) == partly


def test_a_replace_keeps_the_leg_working_with_the_new_quantity():
    partly = LegState(status=S.PARTIALLY_FILLED, quantity=QUANTITY, filled_quantity=4)
    after = apply_event(partly, LegEvent(E.MODIFY_ACCEPTED, quantity=6))
    assert (after.status, after.quantity, after.filled_quantity) == (S.PARTIALLY_FILLED, 6, 4)
    with pytest.raises(IllegalTransition, match="below"):
        apply_event(partly, LegEvent(E.MODIFY_ACCEPTED, quantity=3))


def test_a_broker_row_reports_its_status_as_an_event():
    assert reported("OPEN", filled_quantity=0, quantity=1).kind == E.REPORTED_OPEN
    assert reported("CANCELLED", filled_quantity=0, quantity=1).kind == E.REPORTED_CANCELLED
    # In the book with an unreadable status: the broker holds it.
    assert reported("UNKNOWN", filled_quantity=None, quantity=None).kind == E.REPORTED_HELD
    assert reported("Whatever", filled_quantity=None, quantity=None).kind == E.REPORTED_HELD


_events = st.builds(
    LegEvent,
    kind=st.sampled_from(list(LegEventKind)),
    filled_quantity=st.one_of(st.none(), st.integers(min_value=0, max_value=QUANTITY)),
    quantity=st.one_of(st.none(), st.integers(min_value=1, max_value=2 * QUANTITY)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_events, max_size=25))
def test_any_event_sequence_keeps_the_invariants(events):
    """Whatever arrives, in whatever order and from however many sources: fills never
    shrink, a final leg never works again, and a refused event changes nothing."""
    state = LegState(status=INITIAL_STATUS, quantity=QUANTITY)
    for event in events:
        try:
            after = apply_event(state, event)
        except IllegalTransition as refused:
            assert refused.state == state
            continue
        assert after.filled_quantity >= state.filled_quantity
        assert after.quantity >= after.filled_quantity or after.quantity == state.quantity
        if state.status in FINAL_STATUSES:
            assert after.status in FINAL_STATUSES
            assert after.status == state.status or after.status == S.FILLED
        state = after
