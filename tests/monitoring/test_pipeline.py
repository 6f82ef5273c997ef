"""The 10-step matrix of SPEC 8, table-driven against the pure executor (no database)."""

from __future__ import annotations

import pytest

from monitoring.pipeline import (
    MATRIX,
    REGENERATION_PERMITTED,
    CycleStatus,
    Outcome,
    StepFailed,
    run_cycle,
)

OK, FAILED, SKIPPED = Outcome.OK, Outcome.FAILED, Outcome.SKIPPED


def _steps(fail: set[int], ran: list[int]):
    table = {}
    for spec in MATRIX:

        def step(state, number=spec.number):
            ran.append(number)
            if number in fail:
                raise StepFailed([f"step {number} broke"])
            return {"n": number}

        table[spec.function] = step
    return table


def _run(fail=(), permitted=True):
    ran: list[int] = []
    result = run_cycle(_steps(set(fail), ran), flags={REGENERATION_PERMITTED: lambda: permitted})
    return result, ran


# failing step(s), regeneration permitted -> outcome of steps 1..10, cycle status
CASES = [
    ((), True, [OK, OK, OK, OK, OK, OK, OK, OK, OK, SKIPPED], CycleStatus.OK),
    ((1,), True, [FAILED] + [SKIPPED] * 8 + [OK], CycleStatus.FAILED),
    ((2,), True, [OK, FAILED] + [SKIPPED] * 7 + [OK], CycleStatus.FAILED),
    ((3,), True, [OK, OK, FAILED, SKIPPED, OK, OK, OK, OK, OK, OK], CycleStatus.ERRORS),
    ((4,), True, [OK, OK, OK, FAILED, OK, OK, OK, OK, OK, OK], CycleStatus.ERRORS),
    ((5,), True, [OK, OK, OK, OK, FAILED, OK, OK, OK, OK, OK], CycleStatus.ERRORS),
    ((6,), True, [OK, OK, OK, OK, OK, FAILED, OK, OK, OK, OK], CycleStatus.ERRORS),
    ((7,), True, [OK, OK, OK, OK, OK, OK, FAILED, OK, OK, OK], CycleStatus.ERRORS),
    ((8,), True, [OK, OK, OK, OK, OK, OK, OK, FAILED, SKIPPED, OK], CycleStatus.ERRORS),
    ((9,), True, [OK, OK, OK, OK, OK, OK, OK, OK, FAILED, OK], CycleStatus.ERRORS),
    ((), False, [OK, OK, OK, OK, OK, OK, OK, SKIPPED, SKIPPED, SKIPPED], CycleStatus.OK),
    (
        (3, 5),
        False,
        [OK, OK, FAILED, SKIPPED, FAILED, OK, OK, SKIPPED, SKIPPED, OK],
        CycleStatus.ERRORS,
    ),
]


@pytest.mark.parametrize(("fail", "permitted", "outcomes", "status"), CASES)
def test_matrix_runs_and_skips_exactly_as_specified(fail, permitted, outcomes, status):
    result, ran = _run(fail, permitted)
    assert [o.outcome for o in result.outcomes] == outcomes
    assert ran == [
        n for n, outcome in zip(range(1, 11), outcomes, strict=True) if outcome != SKIPPED
    ]
    assert result.status == status
    assert result.errors == [f"step {n} broke" for n in sorted(fail) if outcomes[n - 1] == FAILED]


def test_step_ten_receives_every_error_of_the_cycle():
    seen = []
    ran: list[int] = []
    steps = _steps({4, 6}, ran)
    steps["send_errors"] = lambda state: seen.extend(state.errors)
    run_cycle(steps, flags={REGENERATION_PERMITTED: lambda: True})
    assert seen == ["step 4 broke", "step 6 broke"]


def test_permission_off_is_a_skip_with_a_reason_not_an_error():
    result, _ = _run(permitted=False)
    step8 = result.outcomes[7]
    assert step8.outcome == SKIPPED
    assert "not enabled" in step8.reason
    assert result.errors == []


def test_permission_is_not_even_checked_when_step_two_failed():
    checked = []
    ran: list[int] = []
    run_cycle(_steps({2}, ran), flags={REGENERATION_PERMITTED: lambda: checked.append(1) or True})
    assert checked == []


def test_an_unexpected_exception_is_that_steps_failure_with_its_message():
    ran: list[int] = []
    steps = _steps(set(), ran)

    def broken(state):
        raise ZeroDivisionError("boom")

    steps["reprice_entry_legs"] = broken
    (result,) = [run_cycle(steps, flags={REGENERATION_PERMITTED: lambda: False})]
    step5 = result.outcomes[4]
    assert step5.outcome == FAILED
    assert "ZeroDivisionError: boom" in step5.reason
    assert result.outcome_of(6) == OK


def test_durations_are_measured_per_step():
    ticks = iter(range(100))
    ran: list[int] = []
    result = run_cycle(
        _steps(set(), ran),
        flags={REGENERATION_PERMITTED: lambda: True},
        clock=lambda: next(ticks) / 10,  # every clock read advances 100 ms
    )
    assert all(o.duration_ms == 100 for o in result.outcomes if o.outcome == OK)
    assert result.outcomes[9].duration_ms == 0  # skipped


def test_skip_reasons_name_the_step_that_stopped_the_cycle():
    result, _ = _run(fail=(1,))
    assert result.outcomes[1].reason == "cycle stopped after step 1 failed"
    result, _ = _run(fail=(3,))
    assert result.outcomes[3].reason == "step 3 failed"
