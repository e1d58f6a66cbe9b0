import apps.core.fields
import apps.repositories.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('repositories', '0003_ssh'),
    ]

    operations = [
        migrations.AddField(
            model_name='repository',
            name='gitlab_url',
            field=models.CharField(blank=True, help_text='the GitLab instance, e.g. https://gitlab.example.com', max_length=500, validators=[apps.repositories.models.gitlab_base_url], verbose_name='GitLab URL'),
        ),
        migrations.AddField(
            model_name='repository',
            name='gitlab_project',
            field=models.CharField(blank=True, help_text='path (team/deploy) or numeric id of the project', max_length=300, verbose_name='GitLab project'),
        ),
        migrations.AddField(
            model_name='repository',
            name='gitlab_token',
            field=apps.core.fields.EncryptedTextField(blank=True, help_text='access token with the scope api', verbose_name='GitLab token'),
        ),
        migrations.AddField(
            model_name='repository',
            name='gitlab_project_id',
            field=models.PositiveBigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='repository',
            name='gitlab_hook_id',
            field=models.PositiveBigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='repository',
            name='gitlab_status',
            field=models.CharField(blank=True, editable=False, help_text='Linked, Failed, or empty when not linked', max_length=16, verbose_name='GitLab link'),
        ),
        migrations.AddField(
            model_name='repository',
            name='gitlab_message',
            field=models.TextField(blank=True, editable=False, verbose_name='GitLab link error'),
        ),
    ]
