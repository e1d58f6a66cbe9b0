"""The cluster GitOps UI itself runs in, ready to deploy to (as Argo CD's "in-cluster")."""
from django.db import migrations


def add_in_cluster(apps, schema_editor):
    Cluster = apps.get_model("clusters", "Cluster")
    Cluster.objects.get_or_create(name="in-cluster", defaults={"auth": "in-cluster"})


class Migration(migrations.Migration):
    dependencies = [("clusters", "0001_initial")]
    operations = [migrations.RunPython(add_in_cluster, migrations.RunPython.noop)]
