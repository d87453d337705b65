"""The HTTP machinery both vendor sandboxes share: routing, auth hook, faults, request log.

Contract:
- :class:`SandboxServer` serves real HTTP on loopback (stdlib
  ``ThreadingHTTPServer``), starts in a background thread, is a context manager,
  accepts port 0 and reports the bound port in :attr:`SandboxServer.url`;
  :meth:`SandboxServer.stop` returns within :attr:`SandboxServer.poll_interval`.
- A vendor sandbox subclasses it, registers routes with :meth:`route`, and
  overrides :meth:`authenticate`, :meth:`error_response` and
  :meth:`rate_limit_response` so that every error body is in its vendor's format.
- Faults (:class:`FaultPlan`) are set per server and changeable at run time, in
  process (``server.faults``) or over HTTP (``POST /_sandbox/faults``): a
  scripted list of responses consumed in order, else seeded probabilities, plus
  added latency. Admin paths (``/_sandbox/...``) are never faulted nor logged.
  Besides error answers and dropped connections, two faults model what a network
  does to a request that did reach the tool: ``stall`` answers only after
  ``delay_ms`` (a client's read timeout fires first), and ``lost`` carries the
  request out and then drops the connection, so the write happened but its
  reply never arrives.
- Every vendor request is logged (:class:`RequestLog`): method, path, query,
  status, and whether it was an item of a Batch API request rather than a request
  of its own. Tests and benchmarks read it in process or at ``GET
  /_sandbox/requests`` and ``GET /_sandbox/stats``, which counts wire requests
  (``wire``: by method) apart from Batch API items (``batch_items``).
- A client that goes away mid-request (a killed run, a dropped connection) is
  taken quietly; any other error while serving a connection is one line on
  stderr, never a traceback.
"""

from __future__ import annotations

import base64
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ADMIN_PREFIX = "/_sandbox"


@dataclass
class Request:
    """One parsed HTTP request as a handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route's named groups
    user: str | None = None  # set by authenticate()

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter (how most servers read repeats)."""
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))

    def basic_auth(self) -> tuple[str, str] | None:
        header = self.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password

    def bearer_token(self) -> str | None:
        header = self.headers.get("authorization", "")
        return header[7:] if header.lower().startswith("bearer ") else None


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode("utf-8")


Handler = Callable[[Request], Response]


@dataclass
class Fault:
    """One injected outcome. ``kind``: ok | 429 | 500 | 502 | 503 | drop | html | stall | lost.

    ``stall`` serves the request normally after ``delay_ms``; ``lost`` serves it
    (a write is applied) and then drops the connection instead of answering.
    """

    kind: str
    retry_after: int = 1
    delay_ms: int = 0
    method: str | None = None   # only requests with this method
    path: str | None = None     # only paths starting with this


@dataclass
class FaultPlan:
    """What goes wrong, and how often. Seeded, so a failing test replays exactly."""

    script: list[Fault] = field(default_factory=list)
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0
    rate_lost: float = 0.0      # the request is carried out, its reply is lost
    latency_ms: float = 0.0
    retry_after: int = 1
    only_writes: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any; consumes a matching scripted one."""
        with self._lock:
            for index, fault in enumerate(self.script):
                if fault.method and fault.method != method:
                    continue
                if fault.path and not path.startswith(fault.path):
                    continue
                del self.script[index]
                return None if fault.kind == "ok" else fault
            if self.only_writes and method not in WRITE_METHODS:
                return None
            roll = self._random.random()
            for kind, rate in (
                ("429", self.rate_429), ("500", self.rate_500),
                ("503", self.rate_503), ("drop", self.rate_drop),
                ("lost", self.rate_lost),
            ):
                if roll < rate:
                    return Fault(kind=kind, retry_after=self.retry_after)
                roll -= rate
            return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_random", None)
        data.pop("_lock", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultPlan:
        data = dict(data)
        data["script"] = [Fault(**item) for item in data.get("script", [])]
        return cls(**data)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: str
    status: int
    at: float
    # An item of a Batch API request, run inside the request that carried it: it never
    # crossed the wire by itself.
    batch_item: bool = False


class RequestLog:
    """Thread-safe log of vendor requests with counters by method/path/status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def count(
        self, method: str | None = None, path: str | None = None, status: int | None = None,
        *, batch_item: bool | None = None,
    ) -> int:
        """How many logged requests match; ``path`` is a prefix or a regex ``re:...``.
        ``batch_item``: None counts both, False only wire requests, True only the
        items Batch API requests carried."""
        return sum(1 for e in self.entries if _matches(e, method, path, status)
                   and (batch_item is None or e.batch_item == batch_item))

    def wire(self, method: str | None = None, path: str | None = None,
             status: int | None = None) -> int:
        """Requests that crossed the wire (Batch API items left out)."""
        return self.count(method, path, status, batch_item=False)

    def writes(self) -> int:
        return sum(1 for e in self.entries if e.method in WRITE_METHODS)

    def stats(self) -> dict[str, Any]:
        """Wire requests (``total``, ``writes``, ``by_*``, and ``wire`` by method) apart
        from the Batch API items they carried (``batch_items``, ``batch_items_by_route``)."""
        everything = self.entries
        entries = [e for e in everything if not e.batch_item]
        items = [e for e in everything if e.batch_item]
        return {
            "total": len(entries),
            "writes": sum(1 for e in entries if e.method in WRITE_METHODS),
            "wire": dict(Counter(e.method for e in entries)),
            "batch_items": len(items),
            "batch_items_by_route": dict(Counter(f"{e.method} {e.path}" for e in items)),
            "by_method": dict(Counter(e.method for e in entries)),
            "by_status": {str(k): v for k, v in Counter(e.status for e in entries).items()},
            "by_route": dict(Counter(f"{e.method} {e.path}" for e in entries)),
        }


def _matches(e: LoggedRequest, method: str | None, path: str | None, status: int | None) -> bool:
    if method and e.method != method:
        return False
    if status is not None and e.status != status:
        return False
    if path:
        if path.startswith("re:"):
            return re.search(path[3:], e.path) is not None
        return e.path.startswith(path)
    return True


class _DropConnection(Exception):
    """Raised inside the handler to close the socket without an answer."""


class SandboxServer:
    """A threaded loopback HTTP server with routing, auth, faults and a request log."""

    vendor = "sandbox"
    # Seconds between the serve loop's checks for stop(): stop() waits half of it on
    # average. Short, because tests stop thousands of sandboxes (stdlib's 0.5 s would
    # be paid by each); a test session may lower it further (tests/conftest.py).
    poll_interval: float = 0.05

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str = "admin",
        password: str = "sandbox",
        faults: FaultPlan | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.username = username
        self.password = password
        self.faults = faults or FaultPlan()
        self.log = RequestLog()
        self._nesting = threading.local()  # handle() depth: > 0 inside a Batch API request
        self.lock = threading.RLock()  # guards the vendor state; handlers take it
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- hooks

    def authenticate(self, request: Request) -> Response | None:
        """Return an error Response to refuse the request, or None to let it in."""
        credentials = request.basic_auth()
        if credentials == (self.username, self.password):
            request.user = self.username
            return None
        return self.error_response(401, "Not authenticated")

    def error_response(self, status: int, message: str, detail: str = "") -> Response:
        """A vendor-formatted error body."""
        return Response(status, {"error": message, "detail": detail})

    def rate_limit_response(self, retry_after: int) -> Response:
        response = self.error_response(429, "Rate limit exceeded")
        response.headers["Retry-After"] = str(retry_after)
        return response

    # ----------------------------------------------------------------- routing

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` and a path regex (named groups -> params)."""
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def dispatch(self, request: Request) -> Response:
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if not match:
                continue
            allowed = True
            if method != request.method:
                continue
            request.params = {k: v for k, v in match.groupdict().items() if v is not None}
            refusal = self.authenticate(request)
            if refusal is not None:
                return refusal
            with self.lock:
                return handler(request)
        if allowed:
            return self.error_response(405, "Method not allowed")
        return self.error_response(404, f"No such resource: {request.path}")

    def _admin(self, request: Request) -> Response:
        name = request.path[len(ADMIN_PREFIX):].strip("/")
        if name == "requests" and request.method == "GET":
            return Response(200, [asdict(e) for e in self.log.entries])
        if name == "stats" and request.method == "GET":
            return Response(200, self.log.stats())
        if name == "requests" and request.method == "DELETE":
            self.log.clear()
            return Response(204)
        if name == "faults" and request.method == "GET":
            return Response(200, self.faults.to_dict())
        if name == "faults" and request.method in ("POST", "PUT"):
            try:
                self.faults = FaultPlan.from_dict(request.json() or {})
            except (TypeError, ValueError) as exc:
                return Response(400, {"error": f"bad fault plan: {exc}"})
            return Response(200, self.faults.to_dict())
        return Response(404, {"error": f"no admin resource {name!r}"})

    def _inject(self, fault: Fault) -> Response:
        if fault.kind == "drop":
            raise _DropConnection
        if fault.kind == "429":
            return self.rate_limit_response(fault.retry_after)
        if fault.kind == "html":
            # What a misconfigured proxy in front of the tool answers.
            return Response(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                            {"Content-Type": "text/html"})
        status = int(fault.kind)
        response = self.error_response(status, HTTPStatus(status).phrase)
        if status == 503:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    def handle(self, request: Request) -> Response:
        """Admin, then faults, then the vendor route; logs vendor requests.

        A request handled while another is being handled on the same thread is an
        item of a Batch API request: logged as such, and not delayed again by the
        added latency (which models the network round trip it never made)."""
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        depth = getattr(self._nesting, "depth", 0)
        self._nesting.depth = depth + 1
        try:
            return self._handle(request, batch_item=depth > 0)
        finally:
            self._nesting.depth = depth

    def _handle(self, request: Request, *, batch_item: bool) -> Response:
        if self.faults.latency_ms and not batch_item:
            time.sleep(self.faults.latency_ms / 1000.0)
        fault = self.faults.pick(request.method, request.path)
        query = "&".join(f"{k}={v}" for k, vs in request.query.items() for v in vs)
        if fault is not None and fault.kind == "stall":
            time.sleep(fault.delay_ms / 1000.0)
            fault = None
        try:
            if fault is not None and fault.kind != "lost":
                response = self._inject(fault)
            else:
                try:
                    response = self.dispatch(request)
                except (ValueError, KeyError, TypeError) as exc:
                    response = self.error_response(400, "Bad request", str(exc))
                if fault is not None:  # "lost": done, but the answer never leaves
                    raise _DropConnection
        except _DropConnection:
            self.log.add(LoggedRequest(request.method, request.path, query, 0, time.time(),
                                       batch_item))
            raise
        self.log.add(LoggedRequest(request.method, request.path, query, response.status,
                                   time.time(), batch_item))
        return response

    # ----------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("sandbox not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY the second
            # waits for the client's delayed ACK (~40 ms per response on Linux).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet by default
                return

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                try:
                    response = server.handle(request)
                except _DropConnection:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                payload = response.encode()
                self.send_response(response.status)
                headers = {"Content-Type": "application/json;charset=UTF-8"}
                headers.update(response.headers)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload and self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        vendor = self.vendor

        class _Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that goes away mid-request (a killed run, a dropped
                # connection fault, Ctrl-C) is normal here; the stdlib would print a
                # traceback for it. Anything else is one line, never a traceback.
                error = sys.exc_info()[1]
                if isinstance(error, ConnectionError | TimeoutError):
                    return
                print(f"{vendor} sandbox: error serving {client_address[0]}:"
                      f"{client_address[1]}: {type(error).__name__}: {error}",
                      file=sys.stderr)

        self._httpd = _Server((self.host, self.requested_port), _Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": self.poll_interval},
            name=f"{self.vendor}-sandbox", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
