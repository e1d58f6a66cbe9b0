from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('builds', '0002_kaniko_backend'),
    ]

    operations = [
        migrations.AddField(
            model_name='tagrule',
            name='build_node_selector',
            field=models.JSONField(blank=True, default=dict, help_text='kaniko: the build pod\'s nodeSelector, {"label": "value"}'),
        ),
        migrations.AddField(
            model_name='tagrule',
            name='build_tolerations',
            field=models.JSONField(blank=True, default=list, help_text='kaniko: the build pod\'s tolerations, [{"key": ..., "operator": "Equal", "value": ..., "effect": "NoSchedule"}]'),
        ),
    ]
