from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import viewsets

from ..filters import AuditEntryFilter
from ..models import AuditEntry
from ..rules import visible_entries
from .serializers import AuditEntrySerializer


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit log, newest first: every change and action with who, when, what and from
    where. Platform admins see every entry; anyone else signed in, the entries of their projects
    and their own actions."""

    serializer_class = AuditEntrySerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEntryFilter
    action_permissions = {"list": None}  # the queryset holds only what the user may see

    def get_queryset(self):
        return visible_entries(self.request.user, AuditEntry.objects.all())
