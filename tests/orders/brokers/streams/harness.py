"""A stream supervisor on its own event loop in a thread (as in a server), for the tests."""

from __future__ import annotations

import asyncio
import threading


class RunningSupervisor:
    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.supervisor.run())
        self.loop.run_until_complete(self.task)

    def call(self, coroutine_function, *args, timeout=15):
        async def call():
            return await coroutine_function(*args)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.supervisor.shutdown)
            self.thread.join(40)
        assert not self.thread.is_alive(), "the supervisor did not stop"
