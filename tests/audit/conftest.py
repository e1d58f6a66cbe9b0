"""The application tests' rows (world) and sync queue, for the audit tests."""
import pytest
from django.test import Client

from apps.applications.models import Project, ProjectMember
from tests.applications.conftest import sync_queue, world  # noqa: F401  fixtures
from tests.applications.factories import make_app


@pytest.fixture
def team(world, django_user_model):  # noqa: F811
    """Project `default` holds `shop`, project `other` holds `billing`; a viewer and an
    operator of `default`, and an operator of `other` only (`outsider`)."""
    other = Project.objects.create(name="other")
    make_app("billing", other, world.repo, world.cluster)
    users = {}
    for name, project, role in (("viewer", world.project, "viewer"),
                                ("operator", world.project, "operator"),
                                ("outsider", other, "operator")):
        user = django_user_model.objects.create_user(name, password="pw-" + name)
        ProjectMember.objects.create(project=project, user=user, role=role)
        users[name] = user
    return users


def client_for(user, address: str = "127.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=address, HTTP_USER_AGENT="audit-test/1.0")
    client.force_login(user)
    return client


def post(client, url, body=None, **extra):
    return client.post(url, body or {}, content_type="application/json", **extra)


def entries(client, **filters) -> list[dict]:
    response = client.get("/api/audit/", filters)
    assert response.status_code == 200, response.content
    return response.json()["results"]
