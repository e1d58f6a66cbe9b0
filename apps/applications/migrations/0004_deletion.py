from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("applications", "0003_project_members_default_project"),
    ]

    operations = [
        migrations.AddField(
            model_name="application",
            name="deletion",
            field=models.CharField(blank=True, help_text="foreground or background while the application's resources are being deleted", max_length=16),
        ),
        migrations.AlterField(
            model_name="operation",
            name="kind",
            field=models.CharField(choices=[("sync", "Sync"), ("rollback", "Rollback"), ("delete", "Delete")], default="sync", max_length=16),
        ),
    ]
