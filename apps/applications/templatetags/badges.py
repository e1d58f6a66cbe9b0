"""`{{ status|badge:"sync" }}`: the markup of applications/_badge.html for one status, rendered
once per (kind, status) and then reused, so a page of 1,000 resources pays a dictionary look-up
per badge instead of a template include (the include was most of the app page's time)."""
from functools import lru_cache

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

register = template.Library()


@lru_cache(maxsize=512)
def _badge(kind: str, status: str) -> str:
    return mark_safe(render_to_string("applications/_badge.html",
                                      {"kind": kind, "status": status}).strip())


@register.filter
def badge(status, kind: str = "status"):
    return _badge(str(kind), str(status or ""))
