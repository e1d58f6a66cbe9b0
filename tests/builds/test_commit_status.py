"""A build of a repository linked to GitLab shows its progress as the commit's status there
(GitLab's REST API emulated from its documentation: tests/localstack/gitlab.py), with a link to
the build page; the build itself runs on the real git server, buildah and registry."""
import pytest

from apps.builds import jobs, services
from apps.builds.models import Build
from apps.repositories.models import Repository
from tests.localstack.gitlab import GitLabEmulator

from .conftest import dockerfile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gitlab_project(world):
    emulator = GitLabEmulator().start()
    project = emulator.add_project("team/service")
    repo = Repository.objects.get(pk=world.repo.pk)
    repo.gitlab_url, repo.gitlab_project = emulator.url, "team/service"
    repo.gitlab_token, repo.gitlab_project_id = emulator.add_token(["api"]), project["id"]
    repo.save()
    yield emulator
    emulator.stop()


def statuses(emulator, sha: str) -> list[tuple[str, str]]:
    return [(s["status"], s["target_url"] or "") for s in emulator.statuses if s["sha"] == sha]


def test_a_build_reports_pending_running_then_success_with_a_link(
        world, buildah, builds_queue, gitlab_project, settings):
    settings.GITOPS_UI_PUBLIC_URL = "https://gitops.example.test/"
    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo ok > /ok")})
    build = services.start_build(world.rules["build"], "build-2.0.0", sha, trigger="test")
    assert statuses(gitlab_project, sha) == []  # nothing in the webhook's request

    assert jobs.run_build(build.pk) == "succeeded"

    page = f"https://gitops.example.test/builds/{build.pk}/"
    assert statuses(gitlab_project, sha) == [("pending", page), ("running", page),
                                             ("success", page)]


def test_a_failed_and_a_canceled_build_say_so_and_an_unlinked_repository_reports_nothing(
        world, buildah, builds_queue, gitlab_project):
    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN exit 3")})
    failed = services.start_build(world.rules["build"], "build-2.0.1", sha, trigger="test")
    assert jobs.run_build(failed.pk) == "failed"
    assert [state for state, _ in statuses(gitlab_project, sha)] == ["pending", "running", "failed"]

    other = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo 2 > /two")})
    queued = services.start_build(world.rules["build"], "build-2.0.2", other, trigger="test")
    services.cancel(queued, world.users["operator"])
    assert Build.objects.get(pk=queued.pk).status == "canceled"
    assert [state for state, _ in statuses(gitlab_project, other)] == ["canceled"]

    Repository.objects.filter(pk=world.repo.pk).update(gitlab_project_id=None)
    third = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo 3 > /three")})
    build = services.start_build(world.rules["build"], "build-2.0.3", third, trigger="test")
    assert jobs.run_build(build.pk) == "succeeded"
    assert statuses(gitlab_project, third) == []
