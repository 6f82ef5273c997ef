"""The monitoring cycle's 10-step matrix (SPEC 8) as data, and a pure executor for it.

No Django here: the executor takes step callables by name, runs them in order as the
matrix says and returns one `StepOutcome` per step. `monitoring.steps` supplies the real
callables; tests may supply others.

Reading the matrix: a step runs when every step in `requires_ok` succeeded, its `flag` (a
fact about the user, evaluated only when the step is reached) is true, and, for the error
report, when errors occurred. When a step fails, `on_failure` says what happens: STOP skips
everything left but the error report; CONTINUE records the error and goes on (steps that
require the failed one are then skipped by their own conditions).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orders.domain.vocabulary import Vocabulary


class Outcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class OnFailure(enum.StrEnum):
    STOP = "stop"  # skip every remaining step except the error report
    CONTINUE = "continue"  # record the error and go on


class CycleStatus(Vocabulary):
    """A cycle's status, as MonitoringRun stores it (its choices)."""

    RUNNING = "RUNNING", "Running"  # started, not finished
    OK = "OK", "OK"
    ERRORS = "ERRORS", "Completed with errors"
    FAILED = "FAILED", "Stopped early"
    # The worker running it died (killed, lost its host) before it finished: marked by the
    # next cycle of the user or by housekeeping (monitoring.services.abandon_dead_runs).
    ABANDONED = "ABANDONED", "Abandoned (worker died)"


@dataclass(frozen=True)
class StepSpec:
    number: int
    name: str
    function: str  # the callable's name in the step table (monitoring.steps)
    requires_ok: tuple[int, ...] = ()
    flag: str | None = None  # a named fact that must be true (e.g. regeneration permitted)
    only_if_errors: bool = False
    on_failure: OnFailure = OnFailure.CONTINUE
    runs_after_stop: bool = False


REGENERATION_PERMITTED = "regeneration_permitted"

# SPEC 8, one row per step: number, name, function, run condition, on-failure behaviour.
MATRIX: tuple[StepSpec, ...] = (
    StepSpec(1, "fetch_broker_data", "fetch_broker_data", on_failure=OnFailure.STOP),
    StepSpec(2, "compute_pnl", "compute_pnl", requires_ok=(1,), on_failure=OnFailure.STOP),
    StepSpec(3, "sync_orders", "sync_orders", requires_ok=(2,)),
    StepSpec(4, "place_protective_legs", "place_protective_legs", requires_ok=(3,)),
    StepSpec(5, "reprice_entry_legs", "reprice_entry_legs", requires_ok=(2,)),
    StepSpec(6, "reprice_stop_loss_legs", "reprice_stop_loss_legs", requires_ok=(2,)),
    StepSpec(7, "archive_rejected_orders", "archive_rejected_orders", requires_ok=(2,)),
    StepSpec(
        8,
        "stage_regenerations",
        "stage_regenerations",
        requires_ok=(2,),
        flag=REGENERATION_PERMITTED,
    ),
    StepSpec(9, "place_regenerations", "place_regenerations", requires_ok=(8,)),
    StepSpec(
        10,
        "send_errors",
        "send_errors",
        only_if_errors=True,
        runs_after_stop=True,
    ),
)

FLAG_REASONS = {REGENERATION_PERMITTED: "entry regeneration not enabled for any strategy"}


class StepFailed(Exception):
    """Raised by a step that did some of its work but not all: each error is reported."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = list(errors)


@dataclass
class StepOutcome:
    number: int
    name: str
    outcome: Outcome
    reason: str = ""
    duration_ms: int = 0
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "name": self.name,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "duration_ms": self.duration_ms,
            "errors": list(self.errors),
            "details": dict(self.details),
        }


@dataclass
class CycleState:
    """What a step sees: the caller's context, and the errors and outcomes so far."""

    context: Any
    errors: list[str] = field(default_factory=list)
    outcomes: dict[int, StepOutcome] = field(default_factory=dict)
    reported: list[str] = field(default_factory=list)

    def report(self, error: str) -> None:
        """Record a problem without failing the step: the cycle goes on, the error is the
        step's and the cycle's (reported to the user by the error step)."""
        self.reported.append(error)


@dataclass
class CycleResult:
    outcomes: list[StepOutcome]
    errors: list[str]
    status: CycleStatus
    duration_ms: int

    def outcome_of(self, number: int) -> Outcome:
        return next(o.outcome for o in self.outcomes if o.number == number)

    def steps_with(self, outcome: Outcome) -> list[int]:
        return [o.number for o in self.outcomes if o.outcome == outcome]


StepCallable = Callable[[CycleState], "dict[str, Any] | None"]


def _skip_reason(
    spec: StepSpec,
    state: CycleState,
    stopped_by: int | None,
    flags: Mapping[str, Callable[[], bool]],
) -> str | None:
    """Why `spec` must not run now, or None when it runs."""
    if stopped_by is not None and not spec.runs_after_stop:
        return f"cycle stopped after step {stopped_by} failed"
    for needed in spec.requires_ok:
        prior = state.outcomes.get(needed)
        if prior is None or prior.outcome != Outcome.OK:
            verb = "failed" if prior and prior.outcome == Outcome.FAILED else "did not run"
            return f"step {needed} {verb}"
    if spec.only_if_errors and not state.errors:
        return "no errors occurred"
    if spec.flag is not None:
        check = flags.get(spec.flag)
        if check is None or not check():
            return FLAG_REASONS.get(spec.flag, f"{spec.flag} is false")
    return None


def run_cycle(
    steps: Mapping[str, StepCallable],
    *,
    context: Any = None,
    flags: Mapping[str, Callable[[], bool]] | None = None,
    matrix: tuple[StepSpec, ...] = MATRIX,
    clock: Callable[[], float] = time.perf_counter,
) -> CycleResult:
    """Run the steps as the matrix says. A step fails by raising (StepFailed carries several
    errors; any other exception is one error); it may return a dict of details to record."""
    flags = flags or {}
    state = CycleState(context=context)
    stopped_by: int | None = None
    cycle_started = clock()
    for spec in matrix:
        reason = _skip_reason(spec, state, stopped_by, flags)
        if reason is not None:
            state.outcomes[spec.number] = StepOutcome(
                spec.number, spec.name, Outcome.SKIPPED, reason=reason
            )
            continue
        started = clock()
        state.reported = []
        try:
            details = steps[spec.function](state) or {}
            outcome = StepOutcome(spec.number, spec.name, Outcome.OK, details=details)
        except StepFailed as failure:
            errors = failure.errors or [f"step {spec.number} {spec.name} failed"]
            outcome = StepOutcome(
                spec.number, spec.name, Outcome.FAILED, reason=errors[0], errors=errors
            )
        except Exception as exc:  # one step's crash is that step's failure, not the cycle's
            message = f"{spec.name}: {type(exc).__name__}: {exc}"
            outcome = StepOutcome(
                spec.number, spec.name, Outcome.FAILED, reason=message, errors=[message]
            )
        outcome.duration_ms = round((clock() - started) * 1000)
        state.outcomes[spec.number] = outcome
        # Problems the step reported without failing: recorded, and the cycle goes on.
        outcome.errors = [*state.reported, *outcome.errors]
        state.errors.extend(state.reported)
        if outcome.outcome == Outcome.FAILED:
            state.errors.extend(outcome.errors[len(state.reported) :])
            if spec.on_failure == OnFailure.STOP and stopped_by is None:
                stopped_by = spec.number
    if stopped_by is not None:
        status = CycleStatus.FAILED
    elif state.errors:
        status = CycleStatus.ERRORS
    else:
        status = CycleStatus.OK
    return CycleResult(
        outcomes=[state.outcomes[s.number] for s in matrix],
        errors=list(state.errors),
        status=status,
        duration_ms=round((clock() - cycle_started) * 1000),
    )
