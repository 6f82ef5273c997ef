"""A stream supervisor on its own event loop in a thread (as in a server), for the tests.

Every one started is remembered until it stopped: the package's conftest stops any left
running at the end of its test (a failed test, a test that forgot), so no supervisor thread
outlives its test and scans a database the session already dropped."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import traceback

running: list[RunningSupervisor] = []


class RunningSupervisor:
    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        running.append(self)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.supervisor.run())
        try:
            self.loop.run_until_complete(self.task)
        finally:
            self.loop.close()

    def call(self, coroutine_function, *args, timeout=15):
        async def call():
            return await coroutine_function(*args)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.supervisor.shutdown)
            self.thread.join(40)
        if not self.thread.is_alive():
            if self in running:
                running.remove(self)
            return
        stuck = self._where()
        self._force()
        raise AssertionError(f"the supervisor did not stop within 40 s; it was at:\n{stuck}")

    def _where(self) -> str:
        """The loop thread's stack and the loop's pending tasks (what kept it from stopping)."""
        frame = sys._current_frames().get(self.thread.ident)
        lines = traceback.format_stack(frame) if frame is not None else []
        try:
            tasks = asyncio.run_coroutine_threadsafe(_tasks(), self.loop).result(5)
        except Exception as exc:  # the loop itself is blocked
            tasks = [f"(the loop did not answer: {exc!r})"]
        return "".join(lines[-12:]) + "\n".join(tasks)

    def _force(self) -> None:
        """Cancel everything on the loop, then stop it (after a failed shutdown)."""

        def cancel_all():
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(cancel_all)
            self.thread.join(10)
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.thread.is_alive() and self in running:
            running.remove(self)


async def _tasks() -> list[str]:
    found = []
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            text = io.StringIO()
            task.print_stack(limit=3, file=text)
            found.append(text.getvalue())
    return found


def stop_all() -> list[str]:
    """Stop every supervisor still running; the problems met (for the caller to report)."""
    problems = []
    for handle in list(running):
        try:
            handle.stop()
        except AssertionError as exc:
            problems.append(str(exc))
    return problems
