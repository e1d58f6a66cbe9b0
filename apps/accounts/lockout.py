"""What a locked-out sign-in answers (django-axes' AXES_LOCKOUT_CALLABLE): the login page again
with the reason, or for the API a JSON body, both with status 429."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import JsonResponse
from django.shortcuts import render
from rest_framework import exceptions, status

API_PREFIX = "/api/"


def lockout_message(username: str = "") -> str:
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    who = f" as {username}" if username else ""
    return (f"Too many failed sign-ins{who} from your address: signing in is blocked for "
            f"{minutes} minute{'s' if minutes != 1 else ''} after the last attempt. "
            "A platform admin can lift the block (admin → Access attempts).")


class LockedOut(exceptions.APIException):
    """A DRF answer for a sign-in django-axes has refused."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"


def lockout_response(request, original_response=None, credentials=None):
    username = _username(request, credentials)
    message = lockout_message(username)
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": message}, status=status.HTTP_429_TOO_MANY_REQUESTS)
    form = AuthenticationForm(request, initial={"username": username})
    return render(request, "registration/login.html",
                  {"form": form, "lockout_message": message,
                   "next": request.POST.get("next", "") if request.method == "POST" else ""},
                  status=status.HTTP_429_TOO_MANY_REQUESTS)


def _username(request, credentials) -> str:
    name = (credentials or {}).get("username") or ""
    if not name and request.method == "POST":
        name = request.POST.get("username", "")
    return str(name)[:150]
