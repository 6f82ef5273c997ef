"""The embedded default's loop: the task functions on timers inside the server's event loop,
delivering through the in-memory channel layer (which only works within that loop)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from monitoring.embedded import start_embedded_jobs
from monitoring.models import MonitoringRun
from tests.factories import make_trader_with_token
from trading_site.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def embedded(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.MONITOR_INTERVAL_SECONDS = 1
    settings.PRICE_FEED_ENABLED = False
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from trading_site.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


async def test_in_process_timer_runs_cycles_and_the_browser_gets_them(embedded):
    user, token = await sync_to_async(make_trader_with_token)()
    communicator = WebsocketCommunicator(application, f"/ws/{user.pk}/?token={token}")
    await communicator.connect()
    assert (await communicator.receive_json_from(timeout=3))["type"] == "connection_established"
    tasks = start_embedded_jobs(asyncio.get_running_loop())
    try:
        while True:
            message = await communicator.receive_json_from(timeout=20)
            if message["type"] == "cycle_complete":
                break
        assert message["status"] == "OK"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await communicator.disconnect()
    run = await sync_to_async(MonitoringRun.objects.get)(user=user, cycle_key=message["cycle"])
    assert run.trigger == "embedded"


def test_the_embedded_timer_runs_every_periodic_task_beat_runs(settings):
    from monitoring.embedded import embedded_jobs
    from trading_site.celery import beat_schedule

    settings.PRICE_FEED_ENABLED = False
    beat_tasks = {entry["task"].rsplit(".", 1)[1] for entry in beat_schedule(60).values()}
    embedded = {job.function.__name__.lstrip("_") for job in embedded_jobs()}
    # The embedded jobs are the beat's tasks themselves, but for the dispatch: a wrapper that
    # says the cycles were started by the embedded timer.
    aliases = {"dispatch": "dispatch_monitoring_cycles"}
    assert {aliases.get(name, name) for name in embedded} == beat_tasks
