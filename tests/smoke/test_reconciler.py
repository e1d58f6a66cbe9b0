"""The reconciler's schedule: tasks run when due, failures do not stop the others."""
import random

from apps.core.reconciler import PeriodicTask, Reconciler


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_tasks_run_on_their_interval_and_a_failure_does_not_block_others():
    clock, calls = FakeClock(), []

    def broken():
        raise RuntimeError("boom")

    tasks = [PeriodicTask("fast", 10, lambda: calls.append("fast")),
             PeriodicTask("slow", 60, lambda: calls.append("slow")),
             PeriodicTask("broken", 10, broken)]
    reconciler = Reconciler(tasks, clock=clock, rng=random.Random(1))
    assert reconciler.run_due() == ["fast", "slow"]
    clock.now += 10
    assert reconciler.run_due() == ["fast"]
    clock.now += 50
    assert reconciler.run_due() == ["fast", "slow"]
    assert calls == ["fast", "slow", "fast", "fast", "slow"]
    assert reconciler.seconds_to_next() == 10


def test_a_task_that_hangs_does_not_hold_up_the_others():
    import threading

    from tests.waiting import until

    release, stop, fast_runs = threading.Event(), threading.Event(), []
    tasks = [PeriodicTask("hangs", 0.05, lambda: release.wait(30)),
             PeriodicTask("fast", 0.05, lambda: fast_runs.append(1))]
    runner = threading.Thread(target=Reconciler(tasks).run_forever, args=(stop,), daemon=True)
    runner.start()
    try:
        # Each task on its own thread: the fast one keeps its pace while the other hangs.
        assert until(lambda: len(fast_runs), lambda n: n >= 5, timeout=10) >= 5
        assert not release.is_set()
    finally:
        release.set()
        stop.set()
        runner.join(5)
    assert not runner.is_alive()
