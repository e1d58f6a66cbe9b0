"""The GitOps engine: Git sources rendered to manifests, compared with the live cluster, synced.

Plain Python with no Django import, split the way Argo CD's gitops-engine is:

    source/    resolve revisions, keep clone caches, render (directory, Kustomize, Helm, Jsonnet)
    cache.py   LiveStateCache: list+watch of managed kinds per cluster, read from memory
    diff.py    desired vs live through server-side apply dry-run, "why OutOfSync"
    sync.py    waves, hooks, apply, prune
    health/    per-kind health rules as Argo CD reports them; `assess(obj)`
    kubeconfig.py  kubeconfig → inline credentials only

Django apps (applications, clusters, repositories) call it; tests hit it directly on the real
control plane of the local stack.
"""
