"""Threads asking the same question at once share a call, never an answer from before they asked."""
import threading

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
