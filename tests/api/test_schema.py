"""The OpenAPI schema (drf-spectacular): valid, without warnings, every endpoint documented with
its permission, and a docs page whose scripts come from this server, not a CDN."""
import re

import pytest
import yaml
from django.core.management import call_command
from django.test import Client


def test_the_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    # Raises (SchemaGenerationError) on any warning or error, and on an invalid schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert not [p for p in paths if not p.endswith("/") and f"{p}/" in paths]  # no duplicates
    for path in ("/api/applications/", "/api/applications/{name}/sync/", "/api/audit/",
                 "/api/auth/token", "/api/clusters/{id}/check/", "/api/webhook/git"):
        assert path in paths, path
    for path, operations in paths.items():
        for method, operation in operations.items():
            description = operation.get("description", "")
            assert "**Permission:**" in description, (method, path)
            # Who holds it, in words, not a predicate's code name.
            assert not re.search(r"is_\w+|&|\w+_\w+_\w+(?!`)", description.split(
                "**Permission:**")[1].split("`: ")[-1]), (method, path, description)
    sync = paths["/api/applications/{name}/sync/"]["post"]
    assert "`applications.sync_application`" in sync["description"]
    assert "operators" in sync["description"]
    assert sync["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "SyncRequestRequest")
    audit_params = {p["name"] for p in paths["/api/audit/"]["get"]["parameters"]}
    assert audit_params >= {"actor", "action", "object_type", "project", "since", "until"}


@pytest.mark.django_db
def test_the_docs_page_loads_its_assets_from_this_server(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in a for a in assets)
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        if asset.startswith("/static/"):
            assert Client().get(asset).status_code == 200, asset
