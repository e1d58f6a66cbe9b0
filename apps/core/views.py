from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from . import services


@never_cache
async def healthz(request):
    """The process is up and serving; used as the liveness probe. Asynchronous: the web
    process answers it on its event loop, never behind the views queued for a thread
    (gitops_ui/asgi.py)."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request):
    """The database and Redis answer; used as the readiness probe."""
    checks = services.readiness()
    ready = all(c.ok for c in checks)
    body = {"status": "ready" if ready else "not ready",
            "checks": {c.name: ("ok" if c.ok else c.detail) for c in checks}}
    return JsonResponse(body, status=200 if ready else 503)


@login_required
def home(request):
    """Signed in, the dashboard starts at the application list."""
    return redirect("applications:list")


@login_required
def system(request):
    """What the platform's parts answer: database, Redis, workers (live)."""
    return render(request, "home.html", {"checks": services.readiness()})
