"""EncryptedTextField: a text column holding a Fernet token; Python code sees plaintext."""
from django.db import models

from .crypto import decrypt, encrypt


class EncryptedTextField(models.TextField):
    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
