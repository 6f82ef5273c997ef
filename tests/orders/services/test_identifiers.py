"""Order unique identifiers: short, unique across accounts and days, atomic across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from django.db import connection

from orders.domain.identifiers import MAX_IDENTIFIER_LENGTH, format_identifier, parse_identifier
from orders.models import DailyCounter
from orders.services.identifiers import next_unique_identifier, next_unique_identifiers
from tests.factories import make_account

ROOT = Path(__file__).resolve().parents[3]


def test_identifiers_fit_xts_and_decode_to_their_parts():
    identifier = format_identifier(
        account_id=36**4 - 1, trading_date=date(2031, 12, 31), sequence=36**8 - 1
    )
    assert len(identifier) <= MAX_IDENTIFIER_LENGTH
    assert identifier.isalnum()
    assert parse_identifier(identifier) == (36**4 - 1, date(2031, 12, 31), 36**8 - 1)


def test_account_and_sequence_boundaries_never_run_together():
    day = date(2025, 1, 2)
    # Without the length prefix, account 1 + sequence "2A" and account "12" + "A" could clash.
    seen = {
        format_identifier(account_id=a, trading_date=day, sequence=q)
        for a in range(1, 80)
        for q in range(1, 80)
    }
    assert len(seen) == 79 * 79


def test_the_counter_starts_at_one_each_day_per_account(db):
    first, second = make_account(), make_account()
    today, tomorrow = date(2025, 3, 3), date(2025, 3, 4)
    a1 = next_unique_identifier(account_id=first.pk, trading_date=today)
    a2 = next_unique_identifier(account_id=first.pk, trading_date=today)
    b1 = next_unique_identifier(account_id=second.pk, trading_date=today)
    a_next_day = next_unique_identifier(account_id=first.pk, trading_date=tomorrow)
    assert [parse_identifier(i)[2] for i in (a1, a2, b1, a_next_day)] == [1, 2, 1, 1]
    assert len({a1, a2, b1, a_next_day}) == 4


def test_a_block_of_identifiers_is_consecutive(db):
    account = make_account()
    block = next_unique_identifiers(account_id=account.pk, count=5)
    assert [parse_identifier(i)[2] for i in block] == [1, 2, 3, 4, 5]
    assert DailyCounter.objects.get(account=account).last_value == 5


_WORKER = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")
django.setup()
from orders.services.identifiers import next_unique_identifier
account_id, count = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps([next_unique_identifier(account_id=account_id) for _ in range(count)]))
"""


@pytest.mark.django_db(transaction=True)
def test_two_processes_taking_numbers_at_once_never_share_one():
    account = make_account()
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"mysql://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}"
            f"/{settings_dict['NAME']}"
        ),
    }
    count = 150
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(account.pk), str(count)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    every = results[0] + results[1]
    assert len(set(every)) == 2 * count
    assert sorted(parse_identifier(i)[2] for i in every) == list(range(1, 2 * count + 1))
