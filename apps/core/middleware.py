"""Request guards that run before any view.

BodySizeLimit: an /api/ request whose Content-Length is over GITOPS_UI_MAX_BODY_BYTES answers
413 with a JSON detail before anything reads the body. A body Django itself finds too big while
parsing it (RequestDataTooBig: DATA_UPLOAD_MAX_MEMORY_SIZE, which settings.py sets to the same
limit, trips on a form body whatever its announced length) gets the same 413, here or in the
API's exception handler, instead of a 400 with a traceback in the log for every such request.
"""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

API_PREFIX = "/api/"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def body_too_large_message(limit: int | None = None) -> str:
    """The 413 detail; without `limit`, the one Django enforces while parsing."""
    if limit is None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return f"request body too large (limit {limit} bytes)"


class BodySizeLimit:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = getattr(settings, "GITOPS_UI_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
        if request.path.startswith(API_PREFIX) and _announced_length(request) > limit:
            return JsonResponse({"detail": body_too_large_message(limit)}, status=413)
        return self.get_response(request)

    def process_exception(self, request, exception):
        # Views outside DRF (DRF's own exception handler answers for its views).
        if isinstance(exception, RequestDataTooBig) and request.path.startswith(API_PREFIX):
            return JsonResponse({"detail": body_too_large_message()}, status=413)
        return None


def _announced_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # not a number: Django's own parsing treats it as no body


class RefusalAs403:
    """A page view's Forbidden (apps/core/access.require) is answered 403 with what was
    refused, so no view needs its own try/except for it. The API answers refusals through its
    exception handler (apps/core/api/exceptions.py) before anything reaches here."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from django.http import HttpResponse

        from .access import Forbidden

        if isinstance(exception, Forbidden):
            return HttpResponse(str(exception), status=403)
        return None

