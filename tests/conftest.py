"""Shared test configuration. The real local stack's fixtures (`stack`, `postgres`,
`redis_server`, `registry`, `git_server`, `kube`, `buildah`) come from the plugin
tests/localstack/pytest_plugin.py, loaded through pyproject.toml."""
