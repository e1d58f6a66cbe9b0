"""Git talks to http(s) remotes, or SSH ones with the repository's own key and known_hosts only:
a file://, ext:: or local-path URL, or an SSH URL without its key, is refused by the engine
before git runs, and git itself runs with GIT_ALLOW_PROTOCOL=http:https (ssh for an SSH remote;
tests/repositories/test_ssh.py)."""
import pytest

from apps.engine.errors import SourceError
from apps.engine.source import RepoCache
from apps.engine.source import git as engine_git
from tests.gitcli import git


@pytest.fixture
def local_repo(tmp_path):
    """A repository on this machine's disk, with a commit: what file:// would read."""
    work = tmp_path / "local"
    git("init", "--quiet", "--initial-branch=main", work)
    (work / "secret.yaml").write_text("kind: Secret\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "on the server's disk", cwd=work)
    return work


def test_non_http_urls_are_refused_before_git_runs(tmp_path, local_repo):
    cache = RepoCache(tmp_path / "cache", timeout=30)
    marker = tmp_path / "pwned"
    for url in (f"file://{local_repo}", str(local_repo), f"ext::sh -c touch% {marker}"):
        with pytest.raises(SourceError, match="^only http:// and https:// repository URLs"):
            cache.resolve(url, "main")
        with pytest.raises(SourceError, match="^only http:// and https://"):
            cache.checkout(url, "a" * 40)
    for url in ("ssh://git@127.0.0.1/team/deploy.git", "git@127.0.0.1:team/deploy.git"):
        with pytest.raises(SourceError, match="is an SSH repository: it needs a private key"):
            cache.resolve(url, "main")
        with pytest.raises(SourceError, match="is an SSH repository: it needs a private key"):
            cache.checkout(url, "a" * 40)
    assert not marker.exists()
    assert not list((tmp_path / "cache").glob("*/repo.git/objects/pack/*.pack"))  # nothing fetched


def test_git_itself_refuses_other_protocols(tmp_path, local_repo):
    """The second wall: even a call that skipped the engine's check cannot read file://."""
    with pytest.raises(SourceError) as refused:
        engine_git._run(["git", "ls-remote", f"file://{local_repo}"], "ls-remote", 30,
                        f"file://{local_repo}", None)
    assert "transport 'file' not allowed" in refused.value.output
    plain = git("ls-remote", f"file://{local_repo}")  # the same call without it works
    assert "refs/heads/main" in plain.stdout
