"""Harbor through its REST API v2.0 (the emulator, tests/localstack/harbor.py, in front of the
stack's real registry): projects made sure of, artifacts with tags and scan overview, robot
accounts for pulls whose secret is returned once and stored nowhere; and the OCI client's
bearer-token flow against Harbor's token service."""
import pytest
from django.db import connection

from apps.audit.models import AuditEntry
from apps.registries import services
from apps.registries.harbor import HarborClient
from apps.registries.models import Registry
from apps.registries.oci import OCIClient, Unauthorized

from .conftest import HARBOR_PROJECT


@pytest.fixture
def harbor_client(harbor):
    with HarborClient(harbor.url, harbor.username, harbor.password) as client:
        yield client


def posts(harbor, path):
    return [r for r in harbor.requests if r[0] == "POST" and r[1].startswith(path)]


def test_a_project_is_created_once_and_private(harbor, harbor_client):
    created = harbor_client.ensure_project("payments")
    again = harbor_client.ensure_project("payments")
    assert created["name"] == again["name"] == "payments"
    assert created["metadata"]["public"] == "false"
    assert len(posts(harbor, "/api/v2.0/projects")) == 1
    # Harbor's name filter also matches partly: "pay" is not "payments".
    assert harbor_client.project("pay") is None
    harbor_client.ensure_project("pay", public=True)
    assert harbor_client.project("pay")["metadata"]["public"] == "true"


def test_artifacts_come_with_their_tags_and_scan_overview(harbor, harbor_client, images):
    harbor_client.ensure_project(HARBOR_PROJECT)
    docker, oci = images[f"{HARBOR_PROJECT}/web:1.0"], images[f"{HARBOR_PROJECT}/web:2.0"]
    harbor.scan_reports[oci] = {"scan_status": "Success", "severity": "High", "summary": {
        "total": 3, "fixable": 1, "summary": {"High": 1, "Low": 2}}}
    artifacts = {a.digest: a for a in harbor_client.artifacts(HARBOR_PROJECT, "web")}
    assert set(artifacts) == {docker, oci}
    assert artifacts[docker].tags == ["1.0"] and artifacts[oci].tags == ["2.0"]
    assert artifacts[docker].scan_overview == {}
    (report,) = artifacts[oci].scan_overview.values()
    assert report["severity"] == "High" and report["summary"]["total"] == 3
    # A repository name with '/' reaches Harbor encoded twice, as its API requires.
    (nested,) = harbor_client.artifacts(HARBOR_PROJECT, "apps/api")
    assert nested.digest == images[f"{HARBOR_PROJECT}/apps/api:1.0"]
    assert any("apps%252Fapi" in r[1] for r in harbor.requests)


def test_the_bearer_token_flow_reads_tags_and_digests(harbor, images):
    with OCIClient(harbor.url, harbor.username, harbor.password) as client:
        client.ping()
        assert sorted(client.tags(f"{HARBOR_PROJECT}/web")) == ["1.0", "2.0"]
        assert client.tags(f"{HARBOR_PROJECT}/web", page_size=1) == ["1.0", "2.0"]
        assert (client.manifest_digest(f"{HARBOR_PROJECT}/web", "2.0")
                == images[f"{HARBOR_PROJECT}/web:2.0"])
    token_requests = [r for r in harbor.requests if r[1].startswith("/service/token")]
    assert token_requests and all(r[2].get("Authorization", "").startswith("Basic ")
                                  for r in token_requests)
    assert any("scope=repository%3Ateam%2Fweb%3Apull" in r[1] for r in token_requests)
    tag_pages = [r for r in harbor.requests if "/tags/list?n=1" in r[1] or "last=" in r[1]]
    assert len(tag_pages) >= 2  # page two came from the Link header
    assert all(r[2].get("Authorization", "").startswith("Bearer ") for r in tag_pages)


def test_a_token_service_that_refuses_the_password_is_unauthorized(harbor):
    wrong = "not-" + harbor.password
    with OCIClient(harbor.url, harbor.username, wrong) as client:
        with pytest.raises(Unauthorized, match="token service .* refused") as refused:
            client.ping()
    assert wrong not in str(refused.value) and harbor.password not in str(refused.value)


@pytest.mark.django_db
def test_a_pull_robot_can_pull_and_its_secret_is_stored_nowhere(harbor, images):
    registry = services.save_registry(Registry(name="harbor", kind=Registry.Kind.HARBOR,
                                               url=harbor.url, username=harbor.username,
                                               password=harbor.password))
    services.ensure_harbor_project(registry, HARBOR_PROJECT)
    robot = services.create_pull_robot(registry, HARBOR_PROJECT, "puller")
    assert robot.name == f"robot${HARBOR_PROJECT}+puller" and robot.secret
    assert robot.secret not in repr(robot)
    with OCIClient(harbor.url, robot.name, robot.secret) as pulls:
        assert sorted(pulls.tags(f"{HARBOR_PROJECT}/web")) == ["1.0", "2.0"]
    with HarborClient(harbor.url, robot.name, robot.secret) as as_robot:
        with pytest.raises(Unauthorized, match="403"):
            as_robot.ensure_project("elsewhere")
    # Nowhere in our database: not on the registry, not in the audit log.
    with connection.cursor() as cursor:
        for table in (Registry._meta.db_table, AuditEntry._meta.db_table):
            cursor.execute(f"SELECT * FROM {table}")
            assert robot.secret not in repr(cursor.fetchall())
    assert AuditEntry.objects.filter(action="registry.robot_created").exists()
