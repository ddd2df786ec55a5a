"""Slowing down wrong passwords, per account name and per client address, in the dashboard's process.

Every attempt reserves the next free time slot of each of its keys (the name tried, the client address) and
waits for it; each wrong password doubles the gap before that key's next slot (10 ms, 20 ms, ... up to a
minute), a right one clears both keys. Reserving before checking, and counting the attempt as wrong until it
proves right, means parallel sessions queue behind each other with the same growing gaps instead of guessing
side by side; an attempt whose slot is more than `max_wait` away is refused at once
without being checked, so no session thread sleeps long.

In memory rather than in the database: it needs no write for every anonymous request (which would itself be
a way to load the server), and the dashboard is one process. A restart clears it, which an attacker cannot
cause from the login form.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cbir.errors import LoginRefused

FIRST_DELAY_S = 0.01  # after the first wrong password; doubled after each further one
MAX_DELAY_S = 60.0
MAX_WAIT_S = 10.0  # longer than this and the attempt is refused instead of waiting
MAX_KEYS = 10_000  # oldest keys are forgotten beyond this, so made-up names cannot grow memory without bound


@dataclass
class _Key:
    failures: int = 0
    next_at: float = 0.0  # monotonic time of the key's next free slot


def delay_after(failures: int) -> float:
    """The gap a key's next attempt waits after this many wrong passwords in a row."""
    if failures <= 0:
        return 0.0
    return min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** min(failures - 1, 64))


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self._clock, self._sleep = clock, sleep
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._lock = threading.Lock()

    def wait_turn(self, keys: Sequence[str]) -> None:
        """Wait for the attempt's slot, or raise LoginRefused when it is more than MAX_WAIT_S away.

        The attempt counts as a wrong password until `succeeded` says otherwise, so attempts sent together
        get the same growing gaps as attempts sent one after the other.
        """
        with self._lock:
            now = self._clock()
            state = [self._touch(k) for k in keys]
            at = max([now] + [s.next_at for s in state])
            if at - now > MAX_WAIT_S:
                raise LoginRefused(
                    f"too many wrong passwords for this account or address: try again in {math.ceil(at - now)} s"
                )
            for s in state:
                s.failures += 1
                s.next_at = at + delay_after(s.failures)
        if at > now:
            self._sleep(at - now)

    def succeeded(self, keys: Sequence[str]) -> None:
        with self._lock:
            for k in keys:
                self._keys.pop(k, None)

    def _touch(self, key: str) -> _Key:
        state = self._keys.pop(key, None) or _Key()
        self._keys[key] = state  # most recently used last
        while len(self._keys) > MAX_KEYS:
            self._keys.popitem(last=False)
        return state
