"""The shared DNS lookup pool answers a lookup that finishes at once instead of hanging.

A lookup can be done before the pool registers its clean-up callback (a fast resolver, a
thread switch at the wrong moment); the callback then runs at once in the caller's thread,
which still holds the pool's lock. Found by the mutation run, where the extra work of
mutmut's trampolines made it happen every time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
