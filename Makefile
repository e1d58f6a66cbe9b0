# The two commands of the README: `make run` and `make test`. Everything they need is installed
# by tools/install.sh, only when missing.
.PHONY: run test deps stack bench lint

run:
	@tools/install.sh python
	@.venv/bin/python -m gitops_ui.launcher

test: deps
	.venv/bin/python -m pytest $(PYTEST_ARGS)

deps:
	@tools/install.sh python system cluster

# Start the whole local stack and print how to reach each part (Ctrl-C stops it).
stack: deps
	.venv/bin/python -m tests.localstack

bench: deps
	.venv/bin/python -m benchmarks $(BENCH_ARGS)
