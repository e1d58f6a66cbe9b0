"""POST /api/webhook/harbor: Harbor's webhook (PUSH_ARTIFACT), checked and queued in
webhooks.handle; the write-back itself runs in a worker."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import webhooks


class HarborWebhookView(APIView):
    """An artifact pushed to Harbor: queue the image write-back of its tags. No login: the
    `Authorization` header must carry the registry's webhook token (401 if absent or wrong,
    403 when the registry has none). 202 with the images queued; 200 for an event that is not
    a push, or a delivery already handled ({"duplicate": true}); 404 for an unknown registry."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request={"application/json": OpenApiTypes.OBJECT},
                   parameters=[OpenApiParameter("registry", description="the registry's name"),
                               OpenApiParameter("Authorization", location=OpenApiParameter.HEADER)],
                   responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT,
                              400: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT,
                              403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT,
                              413: OpenApiTypes.OBJECT})
    def post(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > webhooks.MAX_BODY_BYTES:  # refused before it is read
            return Response({"detail": f"the body is larger than {webhooks.MAX_BODY_BYTES} "
                                       "bytes"}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        try:
            delivery = webhooks.handle(request.body, request.headers.get("Authorization"),
                                       request.query_params.get("registry", ""))
        except webhooks.HarborWebhookError as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        if delivery.ignored:
            return Response({"images": [], "detail": delivery.ignored}, status=status.HTTP_200_OK)
        images = [image.reference() for image in delivery.images]
        if delivery.duplicate:
            return Response({"images": images, "duplicate": True}, status=status.HTTP_200_OK)
        return Response({"images": images}, status=status.HTTP_202_ACCEPTED)
