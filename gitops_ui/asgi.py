"""The ASGI application of the web process: HTTP through Django, websockets through Channels.

HTTP requests do not go through Django's stock ASGIHandler. That one runs each request in a
thread of its own (a new one per request, so a new database connection per request: a
PostgreSQL backend started and a password hash checked on both sides, more CPU than the view)
and crosses between the event loop and a thread twice per middleware. Here the whole
middleware chain and the view run as one call on a small fixed pool of threads
(GITOPS_UI_WEB_THREADS, 4), the way a WSGI server runs them: each thread keeps its database
connection (CONN_MAX_AGE), and the event loop only parses, queues and writes.

/healthz is answered on the event loop itself, before any queued request: a liveness probe must
hear "up" while every thread is busy, which is exactly when a probe stuck in the queue would
time out and have a healthy process killed.
"""
import asyncio
import contextvars
import gc
import os
from concurrent.futures import ThreadPoolExecutor

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gitops_ui.settings")
# Django must be set up before the routing imports models through the consumers.
get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers import base  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402

from apps.core import views as core_views  # noqa: E402
from apps.core.memory import give_back_free_heap  # noqa: E402
from gitops_ui.routing import websocket_urlpatterns  # noqa: E402

LIVENESS_PATH = "/healthz"
QUIET_BEFORE_TRIM = 5.0  # seconds without a request before freed heap is handed back


class PooledASGIHandler(ASGIHandler):
    """Django's ASGI handler with the synchronous middleware chain run on `threads` threads."""

    def __init__(self, threads: int):
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="http")
        self._in_flight = 0
        self._last_request = 0.0  # loop.time() when the newest request ended
        self._trim_due: asyncio.TimerHandle | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django answers HTTP only, not {scope['type']}")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            if scope["path"] == LIVENESS_PATH:
                await self._answer_on_loop(scope, body_file, send)
                return
            loop = asyncio.get_running_loop()
            # A context of its own per request (the audit log's actor is a context variable).
            call = contextvars.copy_context().run
            self._in_flight += 1
            try:
                response = await loop.run_in_executor(self.pool, call, self._respond, scope,
                                                      body_file)
                try:
                    await self.send_response(response, send)
                finally:
                    if response.streaming:  # closed once its content is sent
                        await loop.run_in_executor(self.pool, call, response.close)
            finally:
                self._in_flight -= 1
                self._last_request = loop.time()
                if self._trim_due is None:
                    self._trim_due = loop.call_later(QUIET_BEFORE_TRIM, self._trim, loop)
        finally:
            body_file.close()

    def _trim(self, loop) -> None:
        """The heap a burst of requests grew goes back once no request came for a while. One
        timer, moved on while requests keep coming (not a timer per request)."""
        quiet_for = loop.time() - self._last_request
        if self._in_flight or quiet_for < QUIET_BEFORE_TRIM:
            wait = QUIET_BEFORE_TRIM - (0.0 if self._in_flight else quiet_for)
            self._trim_due = loop.call_later(wait, self._trim, loop)
            return
        self._trim_due = None
        give_back_free_heap()

    def _respond(self, scope, body_file):
        """What a WSGI server does per request, in a pool thread: the request_started signal
        (which recycles this thread's database connection if it is broken or too old), the
        middleware chain and view, and for a response held in memory, close() (request_finished)
        before the bytes are written by the event loop."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
        if not response.streaming:
            response.close()
        return response

    async def _answer_on_loop(self, scope, body_file, send):
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = await core_views.healthz(request)
        await self.send_response(response, send)


application = ProtocolTypeRouter({
    "http": PooledASGIHandler(settings.GITOPS_UI_WEB_THREADS),
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})

# Everything loaded so far lives as long as the process: frozen out of the collector's way,
# a collection under load walks the requests' own objects only; and collected less often
# (Django allocates thousands of objects per request), it pauses readers less.
gc.freeze()
gc.set_threshold(7000, 20, 20)
