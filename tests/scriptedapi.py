"""An HTTP server on loopback that answers as a script says, for contract tests of the code
that talks to kube-apiserver (RawApi, ClusterSources) through the real client's transport.

    with ScriptedApi() as api:
        api.answer("GET", "/api/v1/namespaces/shop", 200, {"metadata": {...}})
        api.answer("POST", "/api/v1/namespaces/shop/configmaps", 409, status_body("AlreadyExists"))
        api.answer("GET", "/x", 200, {}, delay=1.0)  # answers after a second
        raw = api.raw_api(timeout_seconds=0.5)
        ...
        api.requests  # every request received: method, path (with query), headers, body

Each answer serves one request, in order per (method, path); a request with no answer left
gets a 500 and is recorded, so a test sees any request it did not expect.
"""

import json
import tempfile
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from app.kube.api import RawApi, connect

TOKEN = "scripted-token"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def status_body(reason: str, code: int, message: str = "") -> dict[str, Any]:
    """A metav1.Status, the body kube-apiserver sends with an error."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "reason": reason,
        "code": code,
        "message": message,
    }


class ScriptedApi:
    def __init__(self) -> None:
        self._script: dict[tuple[str, str], deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.unexpected: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._dir = tempfile.TemporaryDirectory(prefix="scripted-api-")

    @property
    def host(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, method: str, path: str, status: int, body: Any, delay: float = 0.0) -> None:
        with self._lock:
            self._script[(method, path)].append(Answer(status, body, delay))

    def raw_api(self, timeout_seconds: float = 10.0) -> RawApi:
        """A RawApi made as the webhook makes it: `connect` with a kubeconfig file."""
        kubeconfig = Path(self._dir.name) / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(  # JSON is YAML
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "scripted", "cluster": {"server": self.host}}],
                    "users": [{"name": "webhook", "user": {"token": TOKEN}}],
                    "contexts": [
                        {"name": "scripted", "context": {"cluster": "scripted", "user": "webhook"}}
                    ],
                    "current-context": "scripted",
                }
            ),
            encoding="utf-8",
        )
        return RawApi(connect(str(kubeconfig)), timeout_seconds)

    def calls(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if (r.method, r.path) == (method, path))

    def __enter__(self) -> "ScriptedApi":
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._dir.cleanup()

    def _next(self, received: Received) -> Answer | None:
        with self._lock:
            self.requests.append(received)
            queue = self._script.get((received.method, received.path))
            if queue:
                return queue.popleft()
            self.unexpected.append(received)
            return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                received = Received(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
                answer = scripted._next(received) or Answer(
                    500, status_body("InternalError", 500, "not in the script")
                )
                if answer.delay:
                    time.sleep(answer.delay)
                payload = json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: what a timeout test wants

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads `requests`, not stderr

        return Handler
