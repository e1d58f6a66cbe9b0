"""The trace's answers (apps/builds/trace.py) in the API: GET /api/builds/<id>/trace/ and
GET /api/applications/<name>/trace/."""
from rest_framework import serializers


class PodsRunningSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="the application's Pods running the image now")
    since = serializers.DateTimeField(allow_null=True, help_text=(
        "when the first of them started it (its container's running.startedAt, else the "
        "Pod's startTime); null when none runs it"))
    names = serializers.ListField(child=serializers.CharField())


class TracedBuildSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    url = serializers.SerializerMethodField()
    tag = serializers.CharField()
    sha = serializers.CharField(help_text="the commit it was built from")
    image = serializers.CharField(help_text="the reference it was pushed to")
    digest = serializers.CharField()
    project = serializers.CharField(source="project.name")
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, obj) -> str:
        return f"/builds/{obj.pk}/"


class ImageTraceSerializer(serializers.Serializer):
    image = serializers.CharField(help_text="as the revision's manifests name it")
    digest = serializers.CharField(allow_null=True, help_text=(
        "the reference's own digest, else that of the build that pushed it"))
    built_here = serializers.BooleanField(help_text="a build of this platform pushed it")
    build = TracedBuildSerializer(allow_null=True, help_text=(
        "null when not built here, or built in a project you cannot see"))
    pods = PodsRunningSerializer()


class RevisionTraceSerializer(serializers.Serializer):
    history_id = serializers.IntegerField(source="entry.pk")
    sha = serializers.CharField(source="entry.sha")
    revision = serializers.CharField(source="entry.revision")
    deployed_at = serializers.DateTimeField(source="entry.deployed_at")
    deployed_by = serializers.CharField(source="entry.deployed_by")
    current = serializers.BooleanField(help_text="the revision the application is synced to")
    images = ImageTraceSerializer(many=True)


class ApplicationTraceSerializer(serializers.Serializer):
    application = serializers.CharField(source="application.name")
    cluster = serializers.CharField(source="application.cluster.name")
    namespace = serializers.CharField(source="application.namespace")
    live_error = serializers.CharField(help_text="why no Pods could be read; empty when they were")
    revisions = RevisionTraceSerializer(many=True, help_text="newest first")


class DeployedRevisionSerializer(serializers.Serializer):
    history_id = serializers.IntegerField(source="pk")
    sha = serializers.CharField()
    revision = serializers.CharField()
    deployed_at = serializers.DateTimeField()


class DeployedSerializer(serializers.Serializer):
    application = serializers.CharField(source="application.name")
    url = serializers.SerializerMethodField()
    project = serializers.CharField(source="application.project.name")
    cluster = serializers.CharField(source="application.cluster.name")
    namespace = serializers.CharField(source="application.namespace")
    current = serializers.BooleanField(help_text="its current revision deploys the image")
    first_deployed_at = serializers.DateTimeField()
    revisions = DeployedRevisionSerializer(many=True, help_text="those that deployed the image, "
                                                                "newest first")
    pods = PodsRunningSerializer()
    live_error = serializers.CharField()

    def get_url(self, obj) -> str:
        return f"/applications/{obj.application.name}/"


class BuildTraceSerializer(serializers.Serializer):
    build = serializers.IntegerField(source="build.pk")
    image = serializers.CharField(source="build.image")
    digest = serializers.CharField(source="build.digest")
    waiting_for = serializers.CharField(help_text=(
        "why no application can have deployed it yet; empty once it is pushed"))
    applications = DeployedSerializer(many=True, help_text=(
        "the applications you can see that deployed the image"))
