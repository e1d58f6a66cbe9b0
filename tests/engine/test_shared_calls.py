"""Threads asking the same question at once share a call, never an answer from before they asked."""
import threading
import time

import pytest

from apps.engine.source.shared_calls import SharedCalls


def test_callers_arriving_during_a_call_share_the_next_one_not_the_running_one():
    calls = SharedCalls()
    started, release = threading.Event(), threading.Event()
    answers = iter(["before", "after"])
    count = []

    def ask():
        count.append(1)
        answer = next(answers)
        if answer == "before":
            started.set()
            release.wait(5)
        return answer

    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", calls.call("k", ask)))
    first.start()
    assert started.wait(5)
    # These ask while "before" is being computed: it may predate what they react to.
    late = [threading.Thread(target=lambda i=i: results.setdefault(i, calls.call("k", ask)))
            for i in range(5)]
    for t in late:
        t.start()
    release.set()
    for t in [first, *late]:
        t.join(5)
    assert results["first"] == "before"
    assert [results[i] for i in range(5)] == ["after"] * 5
    assert len(count) == 2  # six callers, two calls


def test_an_error_reaches_every_caller_that_shared_the_call_and_is_not_kept():
    calls = SharedCalls()

    def fail():
        raise OSError("git server down")

    with pytest.raises(OSError, match="down"):
        calls.call("k", fail)
    assert calls.call("k", lambda: "back") == "back"


def test_different_keys_do_not_wait_for_each_other():
    calls = SharedCalls()
    hold = threading.Event()
    slow = threading.Thread(target=lambda: calls.call("hung", lambda: hold.wait(5)))
    slow.start()
    try:
        assert calls.call("other", lambda: 42) == 42
    finally:
        hold.set()
        slow.join(5)


def test_a_caller_that_accepts_answers_since_a_moment_gets_the_newest_call_after_it():
    calls = SharedCalls()
    before = time.time()
    assert calls.call("k", lambda: "first") == "first"
    after_first = time.time() + 0.01
    # Asked as of a moment before that call started (an app created earlier): no new call.
    assert calls.call("k", lambda: "second", since=before) == "first"
    # Asked as of a moment after it: a call of its own, which later callers then share.
    time.sleep(0.02)
    assert calls.call("k", lambda: "second", since=after_first) == "second"
    assert calls.call("k", lambda: "third", since=after_first) == "second"
    # Without `since` (a push, a click): never an answer from before the question.
    assert calls.call("k", lambda: "fourth") == "fourth"
    # A failed call is not kept for anyone.
    with pytest.raises(OSError):
        calls.call("k2", lambda: (_ for _ in ()).throw(OSError("down")))
    assert calls.call("k2", lambda: "up", since=before) == "up"
