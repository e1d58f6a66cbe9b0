from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """One change or action: who (a user, or a label such as "webhook" or "auto-sync"), when,
    what, on which object, from where. `details` never holds a secret: services.record drops
    the value of every field whose name reads like one."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    # The username at the time (kept when the user is deleted), or what acted without one.
    actor_name = models.CharField(max_length=150, db_index=True)
    action = models.CharField(max_length=64, db_index=True,
                              help_text='"<object type>.<verb>", e.g. application.sync')
    object_type = models.CharField(max_length=32, db_index=True, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_name = models.CharField(max_length=255, blank=True)
    # Narrows who sees the entry: members of this project (platform admins see all).
    project = models.ForeignKey("applications.Project", null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+", db_constraint=False)
    project_name = models.CharField(max_length=63, blank=True)
    details = models.JSONField(default=dict, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["project", "-at"], name="audit_project_at")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_name}"
