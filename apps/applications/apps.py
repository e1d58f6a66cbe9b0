from django.apps import AppConfig


class ApplicationsConfig(AppConfig):
    name = "apps.applications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from apps.clusters import services as clusters

        from .live import on_live_change

        clusters.on_live_change(on_live_change)
        # In every process: whoever changes an application marks the cached lists stale.
        from . import listcache  # noqa: F401
