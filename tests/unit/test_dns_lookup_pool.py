"""The shared DNS lookup pool: each name its own answer, at most as many lookups at once as it
has threads, and no hang when a lookup finishes at once.

A lookup can be done before the pool registers its clean-up callback (a fast resolver, a
thread switch at the wrong moment); the callback then runs at once in the caller's thread,
which still holds the pool's lock. Found by the mutation run, where the extra work of
mutmut's trampolines made it happen every time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from sethub.netguard import AddrInfo, _Lookups

ANSWER: list[AddrInfo] = [(2, 1, 6, "", ("93.184.215.14", 443))]


class AnswersInSubmit(ThreadPoolExecutor):
    """An executor whose futures are done when submit returns: the race, every time."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def resolve_within(lookups: _Lookups, seconds: float) -> Sequence[AddrInfo] | None:
    """The answer of one lookup, or None if it did not come back within ``seconds``."""
    answers: list[Sequence[AddrInfo]] = []
    worker = threading.Thread(
        target=lambda: answers.append(lookups.resolve(lambda _h, _p: ANSWER, "example.com", 443, 5.0)),
        daemon=True,  # a hung lookup must not keep the test run alive
    )
    worker.start()
    worker.join(seconds)
    return answers[0] if answers else None


def test_a_lookup_done_before_its_callback_is_registered_is_answered() -> None:
    lookups = _Lookups(threads=1)
    lookups._pool = AnswersInSubmit(max_workers=1)

    assert resolve_within(lookups, 10.0) == ANSWER
    # And the pool still serves the next caller (the lock was released).
    assert resolve_within(lookups, 10.0) == ANSWER


class Gate:
    """A resolver that answers each host with its own address once released, counting callers inside."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int) -> Sequence[AddrInfo]:
        with self._lock:
            self.entered.append(host)
        self.release.wait(30)
        return [(2, 1, 6, "", (ADDRESSES[host], port))]

    def wait_for(self, count: int) -> bool:
        """Poll, with a deadline, until ``count`` lookups are inside the resolver."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(self.entered) >= count:
                return True
            time.sleep(0.01)
        return False


ADDRESSES = {"a.example": "93.184.215.1", "b.example": "93.184.215.2", "c.example": "93.184.215.3"}


def test_lookups_of_different_names_at_once_each_get_their_own_answer() -> None:
    lookups, gate = _Lookups(threads=4), Gate()
    answers: dict[str, Sequence[AddrInfo]] = {}

    def lookup(host: str) -> None:
        answers[host] = lookups.resolve(gate, host, 443, 20.0)

    first = threading.Thread(target=lookup, args=("a.example",), daemon=True)
    first.start()
    assert gate.wait_for(1)
    second = threading.Thread(target=lookup, args=("b.example",), daemon=True)
    second.start()
    assert gate.wait_for(2)
    gate.release.set()
    first.join(20)
    second.join(20)

    assert {host: answer[0][4][0] for host, answer in answers.items()} == {
        "a.example": "93.184.215.1",
        "b.example": "93.184.215.2",
    }


def test_no_more_lookups_run_at_once_than_the_pool_has_threads() -> None:
    lookups, gate = _Lookups(threads=2), Gate()
    timed_out: list[str] = []

    def lookup(host: str) -> None:
        try:
            lookups.resolve(gate, host, 443, 2.0)
        except FutureTimeoutError:
            timed_out.append(host)

    callers = [threading.Thread(target=lookup, args=(host,), daemon=True) for host in ADDRESSES]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(20)
    try:
        # Every caller gave up at its deadline; the third name never got a thread.
        assert sorted(timed_out) == sorted(ADDRESSES)
        assert len(gate.entered) == 2
    finally:
        gate.release.set()
