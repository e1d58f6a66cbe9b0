from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The platform's user. Custom from day one so roles and SSO fields can be added by migration."""
