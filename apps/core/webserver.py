"""The web process: uvicorn serving gitops_ui/asgi.py, with an access log that never shows a secret
sent in a query string.

uvicorn writes every request line, query string included, to its access log (stdout):
`"POST /api/webhook/git?token=<secret> HTTP/1.1" 202`. Here the value of every query parameter
whose name says it holds a secret is written as *** instead. Django's own loggers
(django.request: "Forbidden: /api/webhook/git") write request.path, which has no query string.

Why uvicorn and not daphne: daphne brings Twisted, about 25 MiB of the web process at rest for
the same ASGI application; uvicorn with httptools and the websockets protocol adds about 5.

Run as `python -m apps.core.webserver -b HOST -p PORT gitops_ui.asgi:application` (the launcher
does). The application runs views on a small fixed pool of threads and answers /healthz on the
event loop (gitops_ui/asgi.py).
"""
import argparse
import logging
import re
from urllib.parse import unquote_plus

import uvicorn

SECRET_NAME = re.compile(r"token|secret|passw|key|signature|sig$|auth|credential", re.IGNORECASE)
# Seconds a stopping server waits for open requests and websockets, inside the launcher's 15.
GRACEFUL_STOP_S = 10


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


class RedactQuerySecrets(logging.Filter):
    """On uvicorn.access, whose records carry (client, method, path with query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_query(args[2]), args[3], args[4])
        return True


def log_config() -> dict:
    config = {**uvicorn.config.LOGGING_CONFIG}
    config["filters"] = {"redact": {"()": RedactQuerySecrets}}
    config["handlers"] = {**config["handlers"],
                          "access": {**config["handlers"]["access"], "filters": ["redact"]}}
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-b", "--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument("application", help="module:attribute of the ASGI application")
    args = parser.parse_args(argv)
    uvicorn.run(args.application, host=args.bind, port=args.port, http="httptools",
                ws="websockets-sansio", lifespan="off", log_config=log_config(),
                # The address in the audit log is the peer's: a forwarded-for header from a
                # client on this host is not trusted unless a proxy in front is configured so.
                proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=GRACEFUL_STOP_S)


if __name__ == "__main__":
    main()
