"""Callers asking the same question at once share one call, never an answer older than their
question.

When 300 applications of one repository are created or refreshed together, each asks the git
server for its refs. Answering all from one `ls-remote` is only right if that call started after
each of them asked: a call already running may have started before the push a caller reacts to.
So a caller that finds a call running waits for it to end, then shares the next one with every
caller that arrived meanwhile: a burst of N questions costs at most two calls.

A caller may say how old an answer it accepts (`since`, wall-clock seconds): the first refresh of
an application asks for Git as of the application's creation, and the newest answer from a call
that started after that serves it (kept KEEP_SECONDS). A first sync of 300 applications spread
over a minute asked the git server 214 times before.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")

KEEP_SECONDS = 60.0  # how long the newest answer per key is kept for callers that give `since`


class _Slot:
    def __init__(self):
        self.started = 0  # calls started so far; call n's answer serves callers that asked before n started
        self.finished = 0  # number of the newest call that ended
        self.running = False
        self.answer = None
        self.error: BaseException | None = None
        self.waiting = 0


class SharedCalls(Generic[T]):
    def __init__(self):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._slots: dict[Hashable, _Slot] = {}
        self._newest: dict[Hashable, tuple[float, T]] = {}  # key -> (call started, wall clock; answer)

    def call(self, key: Hashable, fn: Callable[[], T], since: float | None = None) -> T:
        """fn()'s answer, from a call of fn for `key` that started after this one was made, or,
        with `since`, after that moment (time.time())."""
        with self._lock:
            newest = self._newest.get(key)
            if since is not None and newest is not None and newest[0] >= since:
                return newest[1]
            slot = self._slots.setdefault(key, _Slot())
            needed = slot.started + 1
            slot.waiting += 1
            try:
                while slot.finished < needed:
                    if not slot.running:
                        slot.running = True
                        slot.started += 1
                        mine = slot.started
                        break
                    self._changed.wait()
                else:
                    return self._answer(slot)
            finally:
                slot.waiting -= 1
        answer, error = None, None
        started = time.time()
        try:
            answer = fn()
        except BaseException as exc:  # shared with the callers waiting for it, then raised
            error = exc
        with self._lock:
            slot.running, slot.finished = False, mine
            slot.answer, slot.error = answer, error
            self._keep(key, started, answer, error)
            self._changed.notify_all()
            if not slot.waiting:
                self._slots.pop(key, None)  # nobody waits: keep no answers, no keys around
        if error is not None:
            raise error
        return answer

    def _keep(self, key, started: float, answer, error) -> None:
        too_old = started - KEEP_SECONDS
        for other in [k for k, (at, _) in self._newest.items() if at < too_old]:
            del self._newest[other]
        if error is None and (key not in self._newest or self._newest[key][0] < started):
            self._newest[key] = (started, answer)

    @staticmethod
    def _answer(slot: _Slot):
        if slot.error is not None:
            raise slot.error
        return slot.answer
