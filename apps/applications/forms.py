"""The new-application and App-details forms: what a browser posts, read into the data the REST
API takes, so both are checked by the same ApplicationSerializer (spec.py behind it)."""
from __future__ import annotations

import json

from . import labels, spec
from .api.serializers import ApplicationSerializer
from .models import Application, Project
from .rules import visible

TEXT_FIELDS = ("name", "project", "repository", "revision", "path", "chart", "tool", "cluster",
               "namespace", "retry_limit")
FLAGS = ("automated", "prune", "self_heal", "allow_empty")
JSON_FIELDS = {"source": dict, "ignore_differences": list}


def initial(app: Application) -> dict:
    """The form's values for an existing application, as typed text."""
    values = {name: getattr(app, name) for name in TEXT_FIELDS + FLAGS if name not in
              ("project", "repository", "cluster")}
    values.update(project=app.project.name, repository=app.repository.url, cluster=app.cluster.name,
                  sync_options=[o.split("=", 1)[0] for o in app.sync_options if o.endswith("=true")
                                or "=" not in o],
                  **{name: json.dumps(getattr(app, name), indent=2) if getattr(app, name) else ""
                     for name in JSON_FIELDS})
    values["labels"] = labels.as_lines(app.labels)
    return values


def typed(post) -> dict:
    """What was typed, to show again with the errors."""
    values = {name: post.get(name, "").strip() for name in TEXT_FIELDS}
    values.update({name: post.get(name) == "on" for name in FLAGS})
    values.update({name: post.get(name, "") for name in JSON_FIELDS})
    values["sync_options"] = post.getlist("sync_options")
    values["labels"] = post.get("labels", "")
    return values


def validate(values: dict, instance: Application | None = None) -> tuple[dict | None, dict]:
    """(validated data for services.create/update_application, {field: [messages]})."""
    data = {k: v for k, v in values.items()
            if k not in JSON_FIELDS and k not in ("sync_options", "labels")}
    data["sync_options"] = [f"{o}=true" for o in values["sync_options"]]
    errors = {}
    # One `key=value` a line; each bad line gets its own message with its number.
    data["labels"], label_errors = labels.parse_lines(values.get("labels", ""))
    if label_errors:
        errors["labels"] = label_errors
        del data["labels"]
    for name, shape in JSON_FIELDS.items():
        text = values[name].strip()
        try:
            parsed = json.loads(text) if text else shape()
        except json.JSONDecodeError as exc:
            errors[name] = [f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
            continue
        if not isinstance(parsed, shape):
            errors[name] = [f"must be a JSON {'object' if shape is dict else 'list'}"]
        else:
            data[name] = parsed
    if instance is not None:
        data.pop("name")
    serializer = ApplicationSerializer(instance=instance, data=data, partial=instance is not None)
    if not serializer.is_valid():
        errors.update({k: [str(m) for m in v] if isinstance(v, list) else [str(v)]
                       for k, v in serializer.errors.items()})
    return (None if errors else serializer.validated_data), errors


def spec_error(exc: spec.InvalidSpec) -> dict:
    return {exc.top_field: [exc.message if exc.field == exc.top_field else str(exc)]}


def addable_projects(user):
    """The projects in which `user` may create applications."""
    return [p for p in visible(user, Project.objects.order_by("name"), "pk")
            if user.has_perm("applications.add_application", Application(project=p))]


def choices(user) -> dict:
    from apps.clusters.models import Cluster
    from apps.repositories.models import Repository

    return {"projects": [p.name for p in addable_projects(user)],
            "repositories": list(Repository.objects.values_list("url", flat=True)),
            "clusters": list(Cluster.objects.values_list("name", flat=True)),
            "tools": Application.Tool.choices, "sync_options": spec.SYNC_OPTIONS}
