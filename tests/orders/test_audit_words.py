"""The audit trail in a trader's words: every kind of event the desk records has a sentence."""

from __future__ import annotations

import pytest

from orders.audit_words import SENTENCES, sentence
from orders.domain.vocabulary import EventKind


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_event_kind_reads_as_a_sentence_of_its_own(kind):
    # A kind added to the vocabulary without words would show as its raw name.
    assert kind in SENTENCES
    words = sentence(kind.value, role="STOP_LOSS")
    assert "_" not in words and "{" not in words


def test_a_failure_says_what_could_not_be_done():
    assert sentence("leg_cancelled_failed", role="TAKE_PROFIT") == (
        "The take-profit leg could not be cancelled"
    )
    assert sentence("position_exit_cancel_failed", role="STOP_LOSS").startswith(
        "The stop-loss leg could not be cancelled"
    )
