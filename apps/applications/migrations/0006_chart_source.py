from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("applications", "0005_jsonnet_tool"),
    ]

    operations = [
        migrations.AddField(
            model_name="application",
            name="chart",
            field=models.CharField(blank=True, help_text="a chart of a Helm or OCI repository instead of Git; the revision is then its version or a range such as 1.2.* or >=1.0.0 <2.0.0", max_length=200),
        ),
    ]
