from django.apps import AppConfig


class RepositoriesConfig(AppConfig):
    name = "apps.repositories"
    default_auto_field = "django.db.models.BigAutoField"
