"""Builds on the real stack: the git server, buildah (vfs, chroot) and the registry. A tag push
goes through the webhook to the build worker and ends as an image in the registry, read back by
digest; an image already built is reused; a build can be canceled; failures say why; the log
never holds a credential."""
import uuid
from pathlib import Path

import pytest
import requests
from django.conf import settings

from apps.builds import jobs, services
from apps.builds.models import Build
from apps.core.queues import job_queue
from apps.registries import services as registries
from apps.registries.oci import MANIFEST_ACCEPT
from tests.waiting import until

from .conftest import dockerfile, post_tag_push, run_build_worker, start_build_worker, tag_push

pytestmark = pytest.mark.django_db(transaction=True)


def fresh(build) -> Build:
    return Build.objects.get(pk=build.pk)


def assert_no_secret(build, *secrets):
    for secret in secrets:
        assert secret not in build.log and secret not in build.message


def test_push_tag_builds_then_pushes_and_the_registry_serves_the_digest(
        client, world, builds_queue, buildah, registry, git_server):
    job_queue("sync").empty()
    sha = world.service.commit({"Dockerfile": dockerfile(
        buildah, "COPY hello.txt /hello.txt", "RUN cat /hello.txt")
        , "hello.txt": "hello from the pipeline\n"})
    world.service.tag("push-1.2.0", sha)
    answer = post_tag_push(client, tag_push(world.service, "push-1.2.0", sha),
                           delivery=str(uuid.uuid4()))
    assert answer.status_code == 202
    run_build_worker()  # the forking build worker `make run` starts, until the queue is empty

    build = Build.objects.get(pk=answer.json()["builds"][0])
    assert build.status == "succeeded", build.log[-3000:]
    assert build.reused_from is None  # never built before: built first, then pushed
    assert "hello from the pipeline" in build.log  # buildah's own output, streamed to the log
    image = f"{registry.host}/team/img{world.repo.pk}:1.2.0"
    assert build.image == image and build.digest.startswith("sha256:") and build.size > 0
    # The registry serves that digest for the tag, and the manifest by digest.
    assert registries.digest_of(world.registry, image) == build.digest
    manifest = requests.get(f"{registry.url}/v2/team/img{world.repo.pk}/manifests/{build.digest}",
                            auth=(registry.username, registry.password),
                            headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
    assert manifest.status_code == 200
    assert build.started_at and build.finished_at and build.duration > 0
    assert_no_secret(build, registry.password, git_server.password)
    # Credentials reached buildah in an auth file, removed after each command; never --creds.
    commands = [line for line in build.log.splitlines() if line.startswith("$ buildah")]
    assert len(commands) == 2 and all("--authfile" in c and "--creds" not in c for c in commands)
    assert not list((Path(settings.GITOPS_UI_BUILDS_DIR) / "buildah" / "tmp").glob("auth-*"))
    # The deploy repositories follow: the image's write-back is queued for the engine
    # (tests/applications/test_writeback.py takes it from there to the cluster).
    write_backs = [job.args for job in job_queue("sync").get_jobs()
                   if job.func_name == "apps.applications.writeback_jobs.write_back"]
    assert write_backs == [(f"{registry.host}/team/img{world.repo.pk}", "1.2.0", build.digest)]


def test_a_commit_built_once_is_reused_for_the_push(world, buildah, builds_queue):
    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo built > /marker")})
    built = services.start_build(world.rules["build"], "build-7", sha, trigger="test")
    assert jobs.run_build(built.pk) == "succeeded", fresh(built).log[-3000:]
    assert "RUN echo built" in fresh(built).log
    assert fresh(built).digest == ""  # built only: nothing pushed

    pushed = services.start_build(world.rules["push"], "push-7", sha, trigger="test")
    assert jobs.run_build(pushed.pk) == "succeeded", fresh(pushed).log[-3000:]
    pushed = fresh(pushed)
    assert pushed.reused_from_id == built.pk
    assert "reusing the image of build" in pushed.log and "RUN echo built" not in pushed.log
    assert registries.digest_of(world.registry, pushed.image) == pushed.digest


def test_changed_inputs_build_again(world, buildah, builds_queue):
    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "ARG LEVEL=1",
                                                         "RUN echo level $LEVEL")})
    first = services.start_build(world.rules["build"], "build-8", sha, trigger="test")
    assert jobs.run_build(first.pk) == "succeeded"
    world.rules["build"].build_args = {"LEVEL": "2"}
    world.rules["build"].save()
    second = services.start_build(world.rules["build"], "build-8b", sha, trigger="test")
    assert jobs.run_build(second.pk) == "succeeded", fresh(second).log[-3000:]
    assert fresh(second).reused_from is None and "level 2" in fresh(second).log


@pytest.mark.parametrize("files, expected", [
    ({"Dockerfile": "FROM {base}\nRUN false\n"}, "build the image failed"),
    ({"README": "no Dockerfile here\n"}, "has no 'Dockerfile'"),
    ({"Dockerfile": "FROM {registry}/no/such-image:1\n"}, "build the image failed"),
])
def test_a_build_that_cannot_succeed_fails_with_the_reason(world, buildah, registry,
                                                           builds_queue, files, expected):
    sha = world.service.commit({path: text.format(base=buildah.base_image, registry=registry.host)
                                for path, text in files.items()})
    build = services.start_build(world.rules["build"], "build-9", sha, trigger="test")
    assert jobs.run_build(build.pk) == "failed"
    build = fresh(build)
    assert expected in build.message and f"FAILED: {build.message}" in build.log
    assert_no_secret(build, registry.password)


def sleeping_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes() == b"sleep\x00119\x00":
                found.append(proc.name)
        except OSError:
            pass
    return found


def test_refused_registry_credentials_fail_the_push_without_showing_them(
        world, buildah, registry, builds_queue):
    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo x")})
    built = services.start_build(world.rules["build"], "build-10", sha, trigger="test")
    assert jobs.run_build(built.pk) == "succeeded"
    world.registry.password = "wrong-password-6c3f0a"
    world.registry.save()
    build = services.start_build(world.rules["push"], "push-10", sha, trigger="test")
    assert jobs.run_build(build.pk) == "failed"
    build = fresh(build)
    assert build.message.startswith(f"push {build.image} failed")
    assert "authentication required" in build.log.lower() or "unauthorized" in build.log.lower()
    assert_no_secret(build, "wrong-password-6c3f0a", registry.password)


def test_a_running_build_is_canceled_and_its_process_group_killed(world, buildah, builds_queue):
    sha = world.service.commit({"Dockerfile": dockerfile(
        buildah, "RUN echo sleeping && sleep 119")})
    build = services.start_build(world.rules["build"], "build-11", sha, trigger="test")
    worker = start_build_worker(burst=True)
    try:
        running = until(lambda: fresh(build), lambda b: "sleeping" in b.log or b.finished,
                        timeout=300)
        assert running.status == "running", running.log[-2000:]
        services.cancel(running, world.users["operator"])
        canceled = until(lambda: fresh(build), lambda b: b.finished, timeout=60)
        assert canceled.status == "canceled" and "canceled during" in canceled.log, canceled.log
        assert canceled.message == f"canceled by {world.users['operator'].username} while running"
        # buildah's RUN step went with its process group.
        assert until(sleeping_processes, lambda found: not found, timeout=10) == []
        out, _ = worker.communicate(timeout=60)  # the worker is free again: it ends its burst
        assert worker.returncode == 0, out[-2000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_queued_build_is_canceled_at_once_and_never_runs(world, builds_queue):
    build = services.start_build(world.rules["build"], "build-12", "c" * 40, trigger="test")
    services.cancel(build, world.users["operator"])
    assert fresh(build).status == "canceled"
    assert jobs.run_build(build.pk) == "canceled"  # the job finds it canceled: nothing done
    with pytest.raises(services.NotCancelable):
        services.cancel(fresh(build), world.users["operator"])


def test_builds_over_the_limit_wait_for_a_slot(world, builds_queue, settings):
    settings.GITOPS_UI_MAX_CONCURRENT_BUILDS = 1
    running = services.start_build(world.rules["build"], "build-13", "d" * 40, trigger="test")
    waiting = services.start_build(world.rules["build"], "build-14", "e" * 40, trigger="test")
    assert services.claim_slot(running.pk) == "running"
    assert services.claim_slot(waiting.pk) == "wait"
    assert fresh(waiting).status == "queued"
    services.finish(running.pk, "succeeded")
    assert services.claim_slot(waiting.pk) == "running"


def test_a_build_whose_worker_died_frees_its_slot(world, builds_queue, settings):
    settings.GITOPS_UI_MAX_CONCURRENT_BUILDS = 1
    orphan = services.start_build(world.rules["build"], "build-17", "d" * 40, trigger="test")
    assert services.claim_slot(orphan.pk) == "running"
    builds_queue.empty()  # its job is gone, as after a killed worker's job expired
    waiting = services.start_build(world.rules["build"], "build-18", "e" * 40, trigger="test")
    assert services.claim_slot(waiting.pk) == "running"
    orphan = fresh(orphan)
    assert orphan.status == "failed" and "worker stopped" in orphan.message


def test_the_reconciler_fails_a_build_whose_worker_died_without_waiting_for_another(
        world, builds_queue):
    from apps.core.reconciler import periodic_tasks

    orphan = services.start_build(world.rules["build"], "build-19", "f" * 40, trigger="test")
    assert services.claim_slot(orphan.pk) == "running"
    builds_queue.empty()  # its job is gone, as after a killed worker's job expired
    next(t for t in periodic_tasks() if t.name == "fail-abandoned-builds").run()
    orphan = fresh(orphan)
    assert orphan.status == "failed" and "worker stopped" in orphan.message


def test_a_registry_that_is_down_fails_the_push_and_the_worker_serves_on(
        world, buildah, builds_queue):
    from tests.localstack.process import free_port

    sha = world.service.commit({"Dockerfile": dockerfile(buildah, "RUN echo ok")})
    built = services.start_build(world.rules["build"], "build-15", sha, trigger="test")
    assert jobs.run_build(built.pk) == "succeeded"
    world.registry.url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    world.registry.save()
    pushed = services.start_build(world.rules["push"], "push-15", sha, trigger="test")
    assert jobs.run_build(pushed.pk) == "failed"
    pushed = fresh(pushed)
    assert pushed.message.startswith("push 127.0.0.1:") and "failed" in pushed.message
    assert "connection refused" in pushed.log.lower()
    # The next build runs as usual.
    again = services.start_build(world.rules["build"], "build-16", sha, trigger="test")
    assert jobs.run_build(again.pk) == "succeeded"
