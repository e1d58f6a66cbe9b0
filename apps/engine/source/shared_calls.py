"""Callers asking the same question at once share one call, never an answer older than their
question.

When 300 applications of one repository are created or refreshed together, each asks the git
server for its refs. Answering all from one `ls-remote` is only right if that call started after
each of them asked: a call already running may have started before the push a caller reacts to.
So a caller that finds a call running waits for it to end, then shares the next one with every
caller that arrived meanwhile: a burst of N questions costs at most two calls.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


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

    def call(self, key: Hashable, fn: Callable[[], T]) -> T:
        """fn()'s answer, from a call of fn for `key` that started after this one was made."""
        with self._lock:
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
        try:
            answer = fn()
        except BaseException as exc:  # shared with the callers waiting for it, then raised
            error = exc
        with self._lock:
            slot.running, slot.finished = False, mine
            slot.answer, slot.error = answer, error
            self._changed.notify_all()
            if not slot.waiting:
                self._slots.pop(key, None)  # nobody waits: keep no answers, no keys around
        if error is not None:
            raise error
        return answer

    @staticmethod
    def _answer(slot: _Slot):
        if slot.error is not None:
            raise slot.error
        return slot.answer
