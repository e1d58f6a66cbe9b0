"""Small filters of the dashboard templates."""
from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """mapping[key] (None when absent): a dict or QueryDict entry named by a variable."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def short_sha(sha):
    return (sha or "")[:7]


@register.filter
def seconds(value):
    """A duration in seconds as "4.2 s" or "3 min 5 s"."""
    if value in (None, ""):
        return "—"
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {int(value % 60)} s"


@register.filter
def ago(moment):
    """"just now", "5 minutes ago": how long ago `moment` was."""
    from django.utils import timezone
    from django.utils.timesince import timesince

    if not moment:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment).split(',')[0]} ago"


@register.filter
def revision_label(revision):
    """A branch or tag as written; a full commit sha shortened (it is shown below anyway)."""
    revision = revision or ""
    return revision[:12] if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision) else revision


@register.filter
def timestamp(text):
    """An ISO 8601 time as written by Kubernetes or a condition, as "2026-12-03 13:05:09"."""
    return (text or "")[:19].replace("T", " ")
