"""A push refreshes the applications whose folder it changed first, found with one
`git diff-tree` on the real git server's commits, however the apps sort."""
import pytest

from apps.applications.models import Project
from apps.applications import rendering
from apps.applications.rendering import changed_first
from apps.repositories import services as repositories
from apps.repositories.models import Repository
from tests.engine.manifests import configmap

from .factories import make_app

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_app_whose_folder_a_push_changed_comes_first(git_server, repo, cluster_record,  # noqa: F811
                                                        monkeypatch):
    before = repo.push({"a/cm.yaml": configmap("a"), "m/cm.yaml": configmap("m"),
                        "z/cm.yaml": configmap("z")})
    record = Repository.objects.create(url=repo.url, username=git_server.username,
                                       password=git_server.password)
    project = Project.objects.create(name="p-changed-first")
    apps = [make_app(f"cf-{n}-{cluster_record.pk}", project, record, cluster_record, path=n)
            for n in ("a", "m", "z")]
    after = repo.push({"z/cm.yaml": configmap("z2")})
    refs = repositories.refs(record)

    assert repositories.changed_files(record, before, after) == ["z/cm.yaml"]
    monkeypatch.setattr(rendering, "DIFF_FROM_APPS", 2)  # a push to 3 apps: diffed as for 300
    # The changed app in a batch of its own, refreshed before the others are read in full.
    read = []
    batches = changed_first(apps, refs, previous=before,
                            in_full=lambda batch: read.append([a.path for a in batch]) or batch)
    assert [a.path for a in next(batches)] == ["z"] and read == [["z"]]
    assert [a.path for a in next(batches)] == ["a", "m"] and read == [["z"], ["a", "m"]]
    # A commit this cache has never seen: the order comes from each app's render instead.
    assert repositories.changed_files(record, "0" * 40, after) is None
    assert [{app.path for app in batch}
            for batch in changed_first(apps, refs, previous="0" * 40)] == [{"a", "m", "z"}]
