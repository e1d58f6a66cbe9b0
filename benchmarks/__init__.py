"""`make bench`: GitOps UI measured on the workload of ../shared/docs/performance.md.

    .venv/bin/python -m benchmarks [--apps N] [--pushes K] [--only latency,first-sync,...]

Everything runs on a real local stack started for the run (tests.localstack: PostgreSQL, Redis,
the smart-HTTP git server and the KWOK control plane) and the real platform started as
`python -m gitops_ui.launcher`. Figures are printed as a table and written to
bench-results/<date>.json. Timings are never asserted anywhere; compare them with the targets.

Modules:
    machine    facts about the machine, CPU and memory of process trees from /proc
    workload   the deploy repository (N apps x 10 manifests) and the application rows
    system     the stack, Django in this process, the launcher subprocess, cleanup
    scenarios  the measurements
    probe      a separate process that holds a watch cache, for its memory (run by scenarios)
    report     the table and the JSON file
"""
