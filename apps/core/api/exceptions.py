"""Domain errors → HTTP errors with a {"detail": ...} body (REST_FRAMEWORK's EXCEPTION_HANDLER).

| error | status |
|---|---|
| access Forbidden (roles); applications NotPermitted (project rules, webhook token) | 403 |
| applications OperationInProgress, OperationFinished; a row still in use (ProtectedError); a secret that cannot be decrypted | 409 |
| any other ApplicationError; an application field the engine cannot use (InvalidSpec); engine errors; Django ValidationError | 400 |
| a request body over GITOPS_UI_MAX_BODY_BYTES (RequestDataTooBig) | 413 |
| the job queue (Redis) unreachable (QueueUnavailable), with Retry-After | 503 |

Serializer validation errors keep DRF's per-field body under "errors" and gain a one-line
"detail". Messages are the domain's own, which never carry a secret.
"""
from django.core.exceptions import RequestDataTooBig, ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.access import Forbidden
from apps.core.crypto import SecretUnreadable
from apps.core.middleware import body_too_large_message
from apps.core.queues import QueueUnavailable
from apps.engine.errors import EngineError


class BadRequest(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "bad request"
    default_code = "bad_request"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflict"
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request body too large"
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "service unavailable; try again shortly"
    default_code = "service_unavailable"


RETRY_AFTER_SECONDS = "10"


def _as_api_exception(exc):
    from apps.applications import services as applications
    from apps.applications.spec import InvalidSpec

    if isinstance(exc, Forbidden):
        return exceptions.PermissionDenied(str(exc))
    if isinstance(exc, applications.NotPermitted):
        return exceptions.PermissionDenied(str(exc))
    if isinstance(exc, (applications.OperationInProgress, applications.OperationFinished)):
        return Conflict(str(exc))
    if isinstance(exc, (applications.ApplicationError, EngineError)):
        return BadRequest(str(exc))
    if isinstance(exc, ProtectedError):
        users = sorted({str(obj) for obj in exc.protected_objects})
        return Conflict(f"still in use by {', '.join(users[:10])}{' …' if len(users) > 10 else ''}")
    if isinstance(exc, SecretUnreadable):
        return Conflict(f"{exc}; enter the credential again")
    if isinstance(exc, DjangoValidationError):
        return BadRequest("; ".join(exc.messages))
    if isinstance(exc, InvalidSpec):
        return BadRequest(str(exc))
    if isinstance(exc, RequestDataTooBig):  # a form body over Django's limit, found while parsing
        return PayloadTooLarge(body_too_large_message())
    if isinstance(exc, QueueUnavailable):
        return ServiceUnavailable(str(exc))
    return exc


def exception_handler(exc, context):
    response = drf_exception_handler(_as_api_exception(exc), context)
    if response is not None and isinstance(exc, QueueUnavailable):
        response["Retry-After"] = RETRY_AFTER_SECONDS
    if response is not None and isinstance(response.data, (dict, list)) and "detail" not in response.data:
        response.data = {"detail": _summary(response.data), "errors": response.data}
    return response


def _summary(errors) -> str:
    """'field: message; other: message' from DRF's nested error structure."""
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {_summary(v)}" if k != "non_field_errors" else _summary(v)
                         for k, v in errors.items())
    if isinstance(errors, list):
        return "; ".join(_summary(e) for e in errors if e)
    return str(errors)
