"""The audit log page: the same entries and filters as the API, narrowed the same way."""
import pytest
from django.test import Client

from tests.audit.conftest import client_for, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_page_lists_filters_and_narrows_like_the_api(team, world, sync_queue):
    post(client_for(team["operator"], "10.2.2.2"), "/api/applications/shop/sync", {"prune": True})
    post(client_for(team["outsider"]), "/api/applications/billing/refresh")

    page = client_for(team["viewer"]).get("/audit/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-action="application.sync"' in html and "10.2.2.2" in html
    assert "<b>prune</b>: true" in html and "<b>revision</b>" not in html  # empty: left out
    assert "billing" not in html  # another project's entry, and its name among the choices

    filtered = client_for(team["outsider"]).get("/audit/", {"action": "application.refresh"})
    html = filtered.content.decode()
    assert 'data-action="application.refresh"' in html and "shop" not in html
    assert "application.sync" not in html.split("<tbody>")[1]

    bad = client_for(team["viewer"]).get("/audit/", {"since": "yesterday"})
    assert bad.status_code == 200 and "since:" in bad.content.decode()
    assert 'data-action=' not in bad.content.decode()

    assert Client().get("/audit/").status_code == 302  # to the login page
