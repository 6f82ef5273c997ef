"""bench/events.py --quick --cycle-during runs end to end (10 XTS-simulator + 10 paper
accounts, streams on with a full cycle of every user running meanwhile, and the loop alone) and prints its figures in the documented shape, with no duplicate leg,
broker order or cancel in either run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

FIGURE = r"n=(\d+)\s+(?:p50=(\d+) ms\s+)?p95=(\d+) ms"


def _bench_environment() -> dict[str, str]:
    """The suite's own MariaDB server (a database of the bench's own beside the test one)
    and the suite's Redis database (every test starts from an empty one anyway)."""
    db = settings.DATABASES["default"]
    name = f"{db['TEST'].get('NAME') or 'test_' + db['NAME']}_events"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["BENCH_DATABASE_URL"] = (
        f"mysql://{db['USER'] or 'root'}{password}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 3306}/{name}"
    )
    env["BENCH_REDIS_URL"] = settings.REDIS_URL
    return env


def test_the_quick_events_bench_prints_its_figures_and_no_duplicates():
    done = subprocess.run(
        [sys.executable, "bench/events.py", "--quick", "--cycle-during"],
        cwd=ROOT,
        env=_bench_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, (out[-3000:], done.stderr[-3000:])
    runs = re.split(r"^run: streams (on|off)$", out, flags=re.M)
    sections = dict(zip(runs[1::2], runs[2::2], strict=True))
    assert set(sections) == {"on", "off"}, out
    figures = {}
    for name, text in sections.items():
        protection = re.search(r"entry fill -> stop-loss and target accepted\s+" + FIGURE, text)
        oco = re.search(r"stop-loss fill -> target cancelled\s+" + FIGURE, text)
        update = re.search(r"broker fill -> browser order_update\s+" + FIGURE, text)
        assert protection and oco and update, text
        # every one of the 20 orders measured, each figure a number
        assert [m.group(1) for m in (protection, oco, update)] == ["20", "20", "20"], text
        assert "missing" not in text, text
        assert re.search(r"^\s+duplicates: 0$", text, flags=re.M), text
        figures[name] = int(protection.group(3))
    assert re.search(r"events/s, one stream process\s+\d+ \(100 events\)", sections["on"])
    # where the CPU went, and the loop's full cycle running while the streams work
    assert re.search(r"CPU seconds .*stream process 1 [\d.]+$", sections["on"], flags=re.M)
    assert re.search(r"monitoring cycle 1 of every user ran", sections["on"]), sections["on"]
    assert "events/s" not in sections["off"]
    assert re.search(r"^\s+protection\s+[\d.]+x \(", out, flags=re.M), out
    # the streams act before the 3 s loop comes round
    assert figures["on"] < figures["off"], figures
    assert out.rstrip().splitlines()[-1] == "duplicates: 0"
