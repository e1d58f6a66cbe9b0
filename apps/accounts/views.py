"""The account's API tokens: listed by their public prefix, created (the token shown once, on
the page that answers the POST, never stored in clear) and revoked, each audited by services."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from knox.models import AuthToken
from knox.settings import knox_settings

from . import services


def _render(request, new_token=None):
    tokens = AuthToken.objects.filter(user=request.user).order_by("-created")
    return render(request, "accounts/tokens.html", {
        "tokens": tokens, "new_token": new_token, "ttl": knox_settings.TOKEN_TTL})


@never_cache
@login_required
def tokens(request):
    if request.method == "POST":
        _, token = services.create_api_token(request.user)
        # Shown in this answer only (never_cache keeps it out of the browser's cache).
        return _render(request, new_token=token)
    return _render(request)


@login_required
@require_POST
def revoke(request):
    # Only the user's own tokens: another user's prefix is "not found", not "not yours".
    if request.POST.get("all") == "on":
        count = services.revoke_all_api_tokens(request.user)
        messages.success(request, f"Revoked all {count} token{'s' if count != 1 else ''}.")
    else:
        token = AuthToken.objects.filter(user=request.user, token_key=request.POST.get("token_key", "")).first()
        if token is None:
            raise Http404("no such token of yours")
        services.revoke_api_token(token)
        messages.success(request, f"Revoked token {token.token_key}….")
    return redirect("accounts:tokens")
