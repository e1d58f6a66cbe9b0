"""The clusters page: where applications deploy, whether the API server answers and its
version. Read-only: credentials are set in the admin and never shown."""
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from apps.core.access import refusal

from .models import Cluster


@login_required
def cluster_list(request):
    if not request.user.has_perm("clusters.view_cluster"):
        return HttpResponse(refusal(request.user, "clusters.view_cluster"), status=403)
    clusters = Cluster.objects.order_by("name")
    return render(request, "clusters/list.html", {
        "clusters": clusters, "may_change": request.user.has_perm("clusters.change_cluster")})
