"""The Celery worker gives way to broker events: it lowers its own CPU priority once, before
its pool starts, and what it starts inherits it (trading_site.core.cpu_priority). A nice
value cannot be raised back without privilege, so each check runs in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _run(code: str, **env: str) -> dict:
    """Run `code` in a new Python process (Django set up) and return the JSON it prints."""
    prelude = (
        "import json, os, threading\n"
        "start = os.nice(0)\n"
        "import django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'trading_site.settings')\n"
        "django.setup()\n"
        "def thread_nice():\n"
        "    seen = []\n"
        "    t = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, "
        "threading.get_native_id())))\n"
        "    t.start(); t.join()\n"
        "    return seen[0]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_lowering_adds_the_niceness_and_threads_started_later_inherit_it():
    seen = _run(
        "from trading_site.core.cpu_priority import lower_priority\n"
        "before = os.nice(0)\n"
        "after = lower_priority(5)\n"
        "print(json.dumps({'before': before, 'after': after, 'now': os.nice(0), "
        "'thread': thread_nice()}))\n"
    )
    expected = min(seen["before"] + 5, 19)
    assert seen["after"] == seen["now"] == seen["thread"] == expected
    assert expected > seen["before"]


def test_zero_changes_nothing_and_out_of_range_is_refused():
    seen = _run(
        "from trading_site.core.cpu_priority import lower_priority\n"
        "before = os.nice(0)\n"
        "refused = []\n"
        "for bad in (-1, 20):\n"
        "    try:\n"
        "        lower_priority(bad)\n"
        "    except ValueError as exc:\n"
        "        refused.append(str(exc))\n"
        "print(json.dumps({'before': before, 'after': lower_priority(0), 'now': os.nice(0), "
        "'refused': refused}))\n"
    )
    assert seen["before"] == seen["after"] == seen["now"]
    assert len(seen["refused"]) == 2
    assert all("WORKER_NICENESS must be 0 to 19" in message for message in seen["refused"])


@pytest.mark.parametrize("niceness", ["7", "0"])
def test_a_celery_worker_starting_lowers_its_priority_by_the_setting(niceness):
    # What `celery worker` sends once, in its main process, before the pool starts.
    seen = _run(
        "from celery.signals import worker_init\n"
        "import trading_site.celery\n"
        "before = os.nice(0)\n"
        "worker_init.send(sender=None)\n"
        "print(json.dumps({'start': start, 'before': before, 'now': os.nice(0), "
        "'thread': thread_nice()}))\n",
        WORKER_NICENESS=niceness,
    )
    assert seen["before"] == seen["start"]  # loading Django and the Celery app changed nothing
    assert seen["now"] == seen["thread"] == min(seen["before"] + int(niceness), 19)
