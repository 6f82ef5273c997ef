"""Running test work in threads released together, each on its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.db import connection
from django.test import Client


def in_threads(count: int, work: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """Run `work(index)` in `count` threads released together by a barrier; each thread's
    result, or the exception it raised, in index order. Each thread closes its own database
    connection when done (a thread's connection is its own: the test's transaction does
    not cover it, so the test needs `transactional_db` or `django_db(transaction=True)`)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = work(index)
        except BaseException as exc:  # reported to the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


@contextmanager
def execute_wrappers(*wrappers: Callable) -> Iterator[None]:
    """This thread's connection with the execute wrappers installed, innermost last
    (`connection.execute_wrapper` for each)."""
    with ExitStack() as stack:
        for wrapper in wrappers:
            stack.enter_context(connection.execute_wrapper(wrapper))
        yield


def start_thread(
    errors: list[BaseException], work: Callable[[], Any], *wrappers: Callable
) -> threading.Thread:
    """`work` started in a thread of its own, with these execute wrappers on its
    connection (`execute_wrappers`); what it raises is appended to `errors`, and its
    connection is closed when it ends. The caller joins it."""

    def run() -> None:
        try:
            with execute_wrappers(*wrappers):
                work()
        except BaseException as exc:  # reported by the test's assertion
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def posted_from_tabs_at_once(user, path: str, data: dict, *, tabs: int = 4) -> list[Any]:
    """The same web form posted by `tabs` signed-in browser tabs of `user` at one moment
    (`in_threads`): each answer's status code, or what its request raised."""
    clients = [Client() for _ in range(tabs)]
    for client in clients:
        client.force_login(user)
    return in_threads(tabs, lambda n: clients[n].post(path, data).status_code)
