"""A Git smart-HTTP server for the local stack: `git http-backend` behind HTTP Basic auth.

Run as its own process (the GitServer component does this):

    python -m tests.localstack.git_http --root DIR --port P --users FILE

FILE is JSON {"username": ..., "password_sha256": ...}: the password itself is never stored or
logged. Standard library only (wsgiref, threaded), so it needs nothing beyond git itself. Push is
enabled for the authenticated user; every repository under DIR is served.

Request bodies are spooled to a temporary file and handed to the CGI with CONTENT_LENGTH: git
sends large pushes with `Transfer-Encoding: chunked`, which wsgiref does not decode and
http-backend cannot read without a length. A gzip `Content-Encoding` is passed through as
HTTP_CONTENT_ENCODING; http-backend inflates it itself.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

BLOCK = 64 * 1024
REALM = "gitops-ui test git"


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def write_users(path, username: str, password: str) -> None:
    """The credentials file this server reads (only a hash of the password)."""
    with open(path, "w") as f:
        json.dump({"username": username, "password_sha256": password_hash(password)}, f)
    os.chmod(path, 0o600)


class GitHTTP:
    """The WSGI application."""

    def __init__(self, root: str, username: str, password_sha256: str, git: str = "git"):
        self.root = os.path.abspath(root)
        self.username = username
        self.password_sha256 = password_sha256
        self.git = git

    def __call__(self, environ, start_response):
        user = self.authenticate(environ.get("HTTP_AUTHORIZATION", ""))
        if user is None:
            start_response("401 Unauthorized", [
                ("WWW-Authenticate", f'Basic realm="{REALM}"'),
                ("Content-Type", "text/plain")])
            return [b"authentication required\n"]
        try:
            body, length = self.spool_body(environ)
        except ValueError as exc:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [f"bad request body: {exc}\n".encode()]
        return self.backend(environ, user, body, length, start_response)

    def authenticate(self, header: str) -> str | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        ok_user = hmac.compare_digest(user.encode(), self.username.encode())
        ok_password = hmac.compare_digest(password_hash(password), self.password_sha256)
        return user if ok_user and ok_password else None

    @staticmethod
    def spool_body(environ):
        """The request body in a temporary file (rewound) and its length."""
        stream = environ["wsgi.input"]
        body = tempfile.TemporaryFile()
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            _dechunk(stream, body)
        else:
            _copy(stream, body, int(environ.get("CONTENT_LENGTH") or 0),
                  "body shorter than Content-Length")
        length = body.tell()
        body.seek(0)
        return body, length

    def backend(self, environ, user, body, length, start_response):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "SERVER_SOFTWARE": "gitops-ui-test-git",
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ.get("PATH_INFO", "/"),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_ADDR": environ.get("REMOTE_ADDR", "127.0.0.1"),
            "REMOTE_USER": user,
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_HTTP_MAX_REQUEST_BUFFER": str(max(length, 10 * 1024 * 1024)),
            # As if in each repository's config: pushes allowed; repos owned by whoever.
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.receivepack", "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "safe.directory", "GIT_CONFIG_VALUE_1": "*",
        }
        # Git-Protocol (v2), Content-Encoding (gzip), ... but never the credentials.
        env.update({k: v for k, v in environ.items()
                    if k.startswith("HTTP_") and k not in ("HTTP_AUTHORIZATION",
                                                           "HTTP_TRANSFER_ENCODING")})
        proc = subprocess.Popen([self.git, "http-backend"], stdin=body, stdout=subprocess.PIPE,
                                env=env)
        body.close()  # the child has its own descriptor
        status, headers = "200 OK", []
        while True:
            line = proc.stdout.readline()
            if not line:  # backend died before finishing its headers
                proc.wait()
                start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
                return [f"git http-backend exited with {proc.returncode}\n".encode()]
            line = line.decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            else:
                headers.append((name.strip(), value.strip()))
        start_response(status, headers)
        return _stream(proc)


def _stream(proc):
    try:
        while block := proc.stdout.read1(BLOCK):
            yield block
    finally:
        proc.stdout.close()
        proc.wait()


def _copy(stream, out, size: int, short: str) -> None:
    """Copy exactly `size` bytes; a stream that ends sooner is a bad request (`short`)."""
    while size > 0:
        block = stream.read(min(BLOCK, size))
        if not block:
            raise ValueError(short)
        out.write(block)
        size -= len(block)


def _dechunk(stream, out) -> None:
    """Decode an HTTP/1.1 chunked body from `stream` into `out`."""
    while True:
        size_line = stream.readline(1024)
        if not size_line:
            raise ValueError("chunked body ended early")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ValueError(f"bad chunk size line {size_line[:40]!r}") from None
        if size == 0:
            while stream.readline(8192) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return
        _copy(stream, out, size, "chunked body ended early")
        stream.readline(8)  # CRLF after the chunk


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class RequestHandler(WSGIRequestHandler):
    # HTTP/1.1 so that parse_request answers `Expect: 100-continue` (curl sends it before big
    # bodies and would otherwise wait a second); wsgiref still closes after each response.
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # the request line only: no headers, no credentials
        sys.stderr.write(f"{self.address_string()} - [{self.log_date_time_string()}] "
                         f"{format % args}\n")
        sys.stderr.flush()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder holding the bare repositories")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--users", required=True, help="JSON credentials file (see write_users)")
    args = parser.parse_args(argv)
    with open(args.users) as f:
        users = json.load(f)
    git = shutil.which("git")
    if not git:
        sys.exit("git is not installed")
    app = GitHTTP(args.root, users["username"], users["password_sha256"], git)
    with make_server(args.host, args.port, app, server_class=ThreadingWSGIServer,
                     handler_class=RequestHandler) as server:
        print(f"serving {app.root} on http://{args.host}:{args.port}/", file=sys.stderr,
              flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
