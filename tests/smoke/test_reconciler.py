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
