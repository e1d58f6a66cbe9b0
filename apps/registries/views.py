"""The registry pages: the list (where images go, whether each registry answers, how many images
our builds pushed there) and a registry's page, whose images are read from the registry by a
fragment fetched after the page (a slow registry never delays it).

Credentials are never shown: a page says whether one is set, never what it is. Everyone signed
in sees the registries (apps/registries/rules.py); the images are those of the builds the user
may see (apps/builds/rules.py); only platform admins check a connection from here.
"""
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.applications.views import signed_in
from apps.core.access import require

from . import images as registry_images
from . import services
from .models import Registry


@signed_in
def registry_list(request):
    require(request.user, "registries.view_registry")
    registries = list(Registry.objects.order_by("name"))
    counts = registry_images.image_counts(request.user, registries)
    for registry in registries:
        registry.image_count = counts.get(registry.pk, 0)
    return render(request, "registries/list.html", {
        "registries": registries,
        "may_change": request.user.has_perm("registries.change_registry"),
    })


@signed_in
def registry_detail(request, pk):
    registry = _registry(request, pk)
    return render(request, "registries/detail.html", {
        "registry": registry,
        "images": registry_images.images_of(request.user, registry),
        "may_check": request.user.has_perm("registries.check_registry", registry),
        "may_change": request.user.has_perm("registries.change_registry", registry),
    })


@signed_in
def registry_images_part(request, pk):
    """The images with what the registry says of them (fetched by the page once shown)."""
    registry = _registry(request, pk)
    require(request.user, "registries.list_tags", registry)
    images = registry_images.images_of(request.user, registry)
    error = registry_images.read_images(registry, images)
    return render(request, "registries/_images.html",
                  {"registry": registry, "images": images, "error": error,
                   "max_builds": registry_images.MAX_BUILDS})


@signed_in
@require_POST
def registry_check(request, pk):
    registry = _registry(request, pk)
    require(request.user, "registries.check_registry", registry)
    if services.check_connection(registry):
        messages.success(request, f"{registry.name} answered.")
    else:
        messages.error(request, f"{registry.name} did not answer: "
                                f"{registry.connection_message}")
    return redirect("registries:detail", pk=registry.pk)


def _registry(request, pk) -> Registry:
    registry = Registry.objects.filter(pk=pk).first()
    if registry is None or not request.user.has_perm("registries.view_registry", registry):
        raise Http404(f"no registry #{pk}")
    return registry
