"""The repository pages: the list (what applications can deploy from, whether it answers, what
to enter in GitLab's webhook form) and a repository's page: its connection, webhook and GitLab
link, the applications and builds that use it, and its tag rules, which project admins add,
edit and delete here.

Credentials are set in the admin or the API and never shown: a page says whether a secret is
set, never what it is. Every action is a POST (CSRF) checked with the permission the API uses
(a refusal is answered 403 by apps.core.middleware.RefusalAs403), and done by a service, which
records it in the audit log.
"""
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.applications.rules import visible as visible_in_projects
from apps.applications.views import signed_in
from apps.builds import rules as build_rules
from apps.builds import services as builds
from apps.builds.forms import TagRuleForm
from apps.builds.models import TagRule
from apps.core.access import refusal, require
from apps.registries.models import Registry

from . import services
from .models import Repository

RECENT_BUILDS = 10


@signed_in
def repository_list(request):
    if not request.user.has_perm("repositories.view_repository"):
        return HttpResponse(refusal(request.user, "repositories.view_repository"), status=403)
    repositories = Repository.objects.order_by("url")
    return render(request, "repositories/list.html", {
        "repositories": repositories,
        "webhook_url": webhook_url(request),
        "global_secret_set": bool(settings.GITOPS_UI_WEBHOOK_SECRET),
        "webhook_open": settings.GITOPS_UI_WEBHOOK_OPEN,
        "may_change": request.user.has_perm("repositories.change_repository"),
    })


@signed_in
def repository_detail(request, pk):
    repo = _repository(request, pk)
    user = request.user
    rules = list(build_rules.visible(user, repo.tag_rules.select_related("registry", "project")))
    for rule in rules:
        rule.may_change = user.has_perm("builds.change_tagrule", rule)
        rule.may_delete = user.has_perm("builds.delete_tagrule", rule)
    may_change = user.has_perm("repositories.change_repository", repo)
    return render(request, "repositories/detail.html", {
        "repo": repo,
        "webhook_url": webhook_url(request),
        "global_secret_set": bool(settings.GITOPS_UI_WEBHOOK_SECRET),
        "webhook_open": settings.GITOPS_UI_WEBHOOK_OPEN,
        "may_change": may_change,
        "may_check": user.has_perm("repositories.check_repository", repo),
        "gitlab_configured": bool(repo.gitlab_url and repo.gitlab_project and repo.gitlab_token),
        "applications": visible_in_projects(
            user, repo.applications.select_related("project", "cluster")),
        "builds": build_rules.visible(user, repo.builds.select_related("project").defer("log"))
        [:RECENT_BUILDS],
        "tag_rules": rules,
        "may_add_rule": user.has_perm("builds.add_tagrule"),
        "registries_exist": Registry.objects.exists(),
    })


@signed_in
def tag_rule_new(request, pk):
    repo = _repository(request, pk)
    require(request.user, "builds.add_tagrule")  # in some project; the chosen one is checked below
    form = TagRuleForm(request.POST or None, user=request.user, repository=repo)
    if request.method == "POST" and form.is_valid():
        rule = form.save(commit=False)
        require(request.user, "builds.add_tagrule", rule)
        builds.save_tag_rule(rule)
        messages.success(request, f"Added the tag rule {rule}.")
        return redirect("repositories:detail", pk=repo.pk)
    return _render_form(request, repo, form)


@signed_in
def tag_rule_edit(request, pk, rule_pk):
    repo = _repository(request, pk)
    rule = _tag_rule(request, repo, rule_pk)
    require(request.user, "builds.change_tagrule", rule)
    name = str(rule)  # the form changes `rule` as it checks what was typed
    form = TagRuleForm(request.POST or None, instance=rule, user=request.user, repository=repo)
    if request.method == "POST" and form.is_valid():
        # Moved to another project: the role is needed there too (as the API asks).
        require(request.user, "builds.change_tagrule", TagRule(project=form.instance.project))
        builds.save_tag_rule(form.instance)
        messages.success(request, f"Saved the tag rule {form.instance}.")
        return redirect("repositories:detail", pk=repo.pk)
    return _render_form(request, repo, form, rule, name)


@signed_in
@require_POST
def tag_rule_delete(request, pk, rule_pk):
    repo = _repository(request, pk)
    rule = _tag_rule(request, repo, rule_pk)
    require(request.user, "builds.delete_tagrule", rule)
    name = str(rule)
    builds.delete_tag_rule(rule)
    messages.success(request, f"Deleted the tag rule {name}; its builds stay in the list.")
    return redirect("repositories:detail", pk=repo.pk)


@signed_in
@require_POST
def repository_check(request, pk):
    repo = _repository(request, pk)
    require(request.user, "repositories.check_repository", repo)
    if services.check_connection(repo):
        messages.success(request, f"{repo.url} answered.")
    else:
        messages.error(request, f"{repo.url} did not answer: {repo.connection_message}")
    return redirect("repositories:detail", pk=repo.pk)


@signed_in
@require_POST
def gitlab_link(request, pk):
    repo = _repository(request, pk)
    require(request.user, "repositories.change_repository", repo)
    if services.link_gitlab(repo):
        messages.success(request, f"Linked to the GitLab project {repo.gitlab_project}: its "
                                  "webhook sends pushes and tags here.")
    else:
        messages.error(request, f"Not linked: {repo.gitlab_message}")
    return redirect("repositories:detail", pk=repo.pk)


@signed_in
@require_POST
def gitlab_unlink(request, pk):
    repo = _repository(request, pk)
    require(request.user, "repositories.change_repository", repo)
    if services.unlink_gitlab(repo):
        messages.success(request, "Unlinked: the GitLab project's webhook to us is removed.")
    else:
        messages.error(request, f"Not unlinked: {repo.gitlab_message}")
    return redirect("repositories:detail", pk=repo.pk)


def webhook_url(request) -> str:
    """What to paste into GitLab: this server as GitLab reaches it (GITOPS_UI_PUBLIC_URL, which
    linking registers too), else as this browser reached it."""
    path = reverse("webhook-git")
    public = settings.GITOPS_UI_PUBLIC_URL
    return public.rstrip("/") + path if public else request.build_absolute_uri(path)


def _render_form(request, repo, form, rule=None, name=""):
    return render(request, "repositories/tag_rule_form.html",
                  {"repo": repo, "form": form, "rule": rule, "rule_name": name,
                   "registries_exist": Registry.objects.exists()},
                  status=400 if form.is_bound and form.errors else 200)


def _repository(request, pk) -> Repository:
    repo = Repository.objects.filter(pk=pk).first()
    if repo is None or not request.user.has_perm("repositories.view_repository", repo):
        raise Http404(f"no repository #{pk}")
    return repo


def _tag_rule(request, repo, rule_pk) -> TagRule:
    rule = repo.tag_rules.select_related("project", "registry").filter(pk=rule_pk).first()
    if rule is None or not request.user.has_perm("builds.view_tagrule", rule):
        raise Http404(f"no tag rule #{rule_pk} in {repo.url}")
    return rule
