from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


def create_default_project(apps, schema_editor):
    # Like Argo CD's `default`: no restriction on sources or destinations.
    apps.get_model("applications", "Project").objects.get_or_create(
        name="default", defaults={"description": "Any repository, any destination."})


class Migration(migrations.Migration):

    dependencies = [
        ("applications", "0002_resume_automated"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ProjectMember",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("role", models.CharField(choices=[("viewer", "viewer: read"), ("operator", "operator: sync, rollback, refresh, terminate"), ("admin", "admin: also create, edit and delete applications")], default="viewer", max_length=16)),
                ("project", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="members", to="applications.project")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="project_roles", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["project", "user"]},
        ),
        migrations.AddConstraint(
            model_name="projectmember",
            constraint=models.UniqueConstraint(fields=("project", "user"), name="one_role_per_user_and_project"),
        ),
        migrations.RunPython(create_default_project, migrations.RunPython.noop),
    ]
