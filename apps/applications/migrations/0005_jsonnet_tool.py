from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("applications", "0004_deletion"),
    ]

    operations = [
        migrations.AlterField(
            model_name="application",
            name="tool",
            field=models.CharField(blank=True, choices=[("", "detect"), ("directory", "plain directory"), ("kustomize", "Kustomize"), ("helm", "Helm"), ("jsonnet", "Jsonnet")], default="", max_length=16),
        ),
    ]
