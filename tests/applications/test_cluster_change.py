"""A change seen in the cluster is compared with the commit resolved last, without a git call
(as Argo CD's CompareWithRecent): self-heal keeps working while the git server is slow or down,
and a rollout's many status writes cost the git server nothing."""
import pytest

from apps.applications import jobs
from apps.applications.models import Application
from apps.clusters import services as clusters
from apps.engine.resources import ResourceKey
from tests.appstack import live, refreshed
from tests.engine.manifests import deployment
from tests.waiting import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def ref_listings(git_server, repo_name: str) -> int:
    """ls-remote calls the git server answered for `repo_name`, from its access log (each
    first asks without credentials and is answered 401: only the 200s count)."""
    log = git_server.processes[0].log.read_text(errors="replace")
    return sum(1 for line in log.splitlines()
               if f"/{repo_name}.git/info/refs?service=git-upload-pack" in line and '" 200 ' in line)


def test_a_hand_edit_is_reverted_without_asking_the_git_server(git_server, repo, make_app, name):
    repo.push({"web.yaml": deployment("web", replicas=2)})
    app = make_app(repo, automated=True, self_heal=True)
    refreshed(app)  # resolves the branch (one ls-remote) and syncs
    runtime = clusters.runtime(app.cluster)
    deployments = runtime.cluster.resource_for("apps/v1", "Deployment")
    runtime.cluster.request("PATCH", deployments.path(app.namespace, "web"),
                            body={"spec": {"replicas": 7}},
                            content_type="application/merge-patch+json")
    key = ResourceKey("apps", "Deployment", app.namespace, "web")
    until(lambda: runtime.cache.get(key), lambda obj: obj and obj["spec"]["replicas"] == 7,
          timeout=10)
    before = ref_listings(git_server, name)

    jobs.refresh(app.name, False, True)  # what a watch event queues

    assert live(app, "apps/v1", "Deployment", "web")["spec"]["replicas"] == 2
    assert ref_listings(git_server, name) == before
    assert Application.objects.get(pk=app.pk).operations.filter(automated=True).count() == 2

    jobs.refresh(app.name)  # a refresh someone asked for asks Git
    assert ref_listings(git_server, name) == before + 1
