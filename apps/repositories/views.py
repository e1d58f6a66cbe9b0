"""The repositories page: what applications can deploy from, whether it answers, and what to
enter in GitLab's webhook form. Read-only: credentials are set in the admin and never shown."""
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.core.access import refusal

from .models import Repository


@login_required
def repository_list(request):
    if not request.user.has_perm("repositories.view_repository"):
        return HttpResponse(refusal(request.user, "repositories.view_repository"), status=403)
    repositories = Repository.objects.order_by("url")
    return render(request, "repositories/list.html", {
        "repositories": repositories,
        "webhook_url": request.build_absolute_uri(reverse("webhook-git")),
        "global_secret_set": bool(settings.GITOPS_UI_WEBHOOK_SECRET),
        "webhook_open": settings.GITOPS_UI_WEBHOOK_OPEN,
        "may_change": request.user.has_perm("repositories.change_repository"),
    })
