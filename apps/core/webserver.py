"""The web process: daphne, with an access log that never shows a secret sent in a query string.

daphne writes every request line, query string included, to its access log (stdout at its
default verbosity): `"POST /api/webhook/git?token=<secret>" 202`. Here the value of every query
parameter whose name says it holds a secret is written as *** instead. Django's own loggers
(django.request: "Forbidden: /api/webhook/git") write request.path, which has no query string.

Run as `python -m apps.core.webserver <daphne arguments>` (the launcher does). The application
it serves, gitops_ui/asgi.py, runs views on a small fixed pool of threads and answers /healthz
on the event loop.
"""
import re
from urllib.parse import unquote_plus

from daphne import cli
from daphne.access import AccessLogGenerator

SECRET_NAME = re.compile(r"token|secret|passw|key|signature|sig$|auth|credential", re.IGNORECASE)


def redact_query(request_line: str) -> str:
    """`request_line` ("POST /path?a=1&token=x") with secret-looking parameter values as ***."""
    path, question, query = request_line.partition("?")
    if not question:
        return request_line
    query, space, rest = query.partition(" ")  # a request line may end with " HTTP/1.1"
    pairs = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        # Decoded as Django decodes it: %74oken is the token parameter too.
        pairs.append(f"{name}=***" if equals and SECRET_NAME.search(unquote_plus(name)) else pair)
    return f"{path}?{'&'.join(pairs)}{space}{rest}"


class RedactingAccessLog(AccessLogGenerator):
    def write_entry(self, host, date, request, *args, **kwargs):
        super().write_entry(host, date, redact_query(request), *args, **kwargs)


# daphne's command line builds its access log from this name (daphne/cli.py).
cli.AccessLogGenerator = RedactingAccessLog

if __name__ == "__main__":
    cli.CommandLineInterface.entrypoint()
