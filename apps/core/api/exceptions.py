"""Domain errors → HTTP errors with a {"detail": ...} body (REST_FRAMEWORK's EXCEPTION_HANDLER).

| error | status |
|---|---|
| applications NotPermitted (project rules, webhook token) | 403 |
| applications OperationInProgress, OperationFinished; a row still in use (ProtectedError); a secret that cannot be decrypted | 409 |
| any other ApplicationError; engine errors; Django ValidationError | 400 |

Serializer validation errors keep DRF's per-field body under "errors" and gain a one-line
"detail". Messages are the domain's own, which never carry a secret.
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.crypto import SecretUnreadable
from apps.engine.errors import EngineError


class BadRequest(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "bad request"
    default_code = "bad_request"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflict"
    default_code = "conflict"


def _as_api_exception(exc):
    from apps.applications import services as applications

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
    return exc


def exception_handler(exc, context):
    response = drf_exception_handler(_as_api_exception(exc), context)
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
