from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("applications", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="application",
            name="resume_automated",
            field=models.BooleanField(default=False, help_text=(
                "automated sync was on when a pinned rollback turned it off; unpinning turns it "
                "back on")),
        ),
    ]
