# The two commands of the README: `make run` and `make test`. Everything they need is installed
# by tools/install.sh, only when missing.
.PHONY: run test deps stack bench lint demo

run:
	@tools/install.sh python
	@.venv/bin/python -m gitops_ui.launcher

test: deps
	.venv/bin/python -m pytest $(PYTEST_ARGS)

deps:
	@tools/install.sh python system cluster kaniko

# Start the whole local stack and print how to reach each part (Ctrl-C stops it).
stack: deps
	.venv/bin/python -m tests.localstack

# The build loop walked once on the local stack with the platform running (tag build-1.0.0,
# tag push-1.0.0 → write-back → sync → pods on 1.0.0), then the dashboard stays up until Ctrl-C.
# DEMO_ARGS=--once stops after the walk.
demo: deps
	.venv/bin/python -m benchmarks.demo $(DEMO_ARGS)

# With no BENCH_ARGS: every measurement at N=100, then the scale rows of the README (N=300 and
# N=1,000 apps × 10 resources), each on a fresh stack; then the cluster alone with the 1,000
# apps' objects (its floor), and our first sync of 1,000 with the controller-manager's client
# limit raised from 20 to 200 requests/s: about 30 minutes on the 2-core machine.
bench: deps
ifdef BENCH_ARGS
	.venv/bin/python -m benchmarks $(BENCH_ARGS)
else
	.venv/bin/python -m benchmarks --apps 100
	.venv/bin/python -m benchmarks --apps 300 --only latency,first-sync,memory --no-profile
	.venv/bin/python -m benchmarks --apps 1000 --only first-sync,memory --no-profile --sync-timeout 1800
	.venv/bin/python -m benchmarks --apps 1000 --only floor --sync-timeout 1800
	.venv/bin/python -m benchmarks --apps 1000 --only first-sync --no-profile --sync-timeout 1800 --controller-qps 200
endif
