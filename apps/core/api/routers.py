from django.urls import re_path
from rest_framework.routers import SimpleRouter


class Router(SimpleRouter):
    """A SimpleRouter whose routes match with and without the trailing slash
    (/api/clusters/1/check and /api/clusters/1/check/); reversed URLs keep the slash."""

    def get_urls(self):
        with_slash = super().get_urls()
        without = [re_path(str(p.pattern).replace("/$", "$"), p.callback, name=p.name)
                   for p in with_slash]
        # Django reverses to the pattern defined last, so the slashed ones come last.
        return without + with_slash
