"""HTTP routes: /mutate for AdmissionReviews, health, readiness and metrics."""

import logging
from collections.abc import Callable

import anyio.to_thread
import orjson
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from app.admission.review import BadReviewError, parse_review
from app.admission.service import Admission
from app.metrics import Metrics

log = logging.getLogger("configpin.web")

# An AdmissionReview carries the object and, on UPDATE, the old object: etcd caps one
# object near 1.5 MiB, so 7 MiB leaves room for both plus JSON overhead (as
# controller-runtime does); anything larger is not a review the API server sends.
MAX_BODY_BYTES = 7 * 1024 * 1024


def create_app(admission: Admission, metrics: Metrics, ready: Callable[[], bool]) -> ASGIApp:
    """The webhook's ASGI app: `/mutate` answered by `MutateEndpoint` ahead of FastAPI, which
    serves the rest (health, readiness, metrics)."""
    rest = FastAPI(title="configpin", docs_url=None, redoc_url=None, openapi_url=None)

    @rest.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @rest.get("/readyz")
    def readyz() -> PlainTextResponse:
        if ready():
            return PlainTextResponse("ok")
        return PlainTextResponse("not ready", status_code=503)

    @rest.get("/metrics")
    def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return MutateEndpoint(admission, metrics, rest)


class MutateEndpoint:
    """Every admission review goes through `/mutate`, so it is answered here, in plain ASGI
    in front of the framework: FastAPI's routing, middleware and dependency resolution, and
    even Starlette's request and response objects, cost more than the review itself."""

    def __init__(self, admission: Admission, metrics: Metrics, rest: ASGIApp) -> None:
        self._admission = admission
        self._metrics = metrics
        self._rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mutate":
            await self._rest(scope, receive, send)
            return
        headers = [JSON_CONTENT]
        if scope["method"] != "POST":
            status, body = 405, _error_body("method not allowed")
            headers.append((b"allow", b"POST"))
        else:
            try:
                answered = await self._answer(scope, receive)
            except Exception as error:
                # Admission turns its own failures into answers; this is the web layer's.
                # The type only: a message could quote the body.
                log.error("internal error answering a review: %s", type(error).__name__)
                answered = 500, _error_body("internal error")
            if answered is None:
                return  # the client went away: nobody to answer
            status, body = answered
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes] | None:
        admission = self._admission
        content_type, declared = _content_headers(scope)
        if content_type != "application/json":
            return self._refuse(415, "expected Content-Type application/json")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return self._refuse(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        body = await _read_capped(receive)
        if body is None:
            return None
        if len(body) > MAX_BODY_BYTES:
            return self._refuse(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            review = parse_review(body, admission.kinds)
        except BadReviewError as error:
            return self._refuse(400, str(error))
        # Most reviews (Pods of a pinned ReplicaSet) are decided by the object alone and
        # answered here; the Kubernetes client is synchronous, so the rest go to a thread.
        answer = admission.review_offline(review)
        if answer is None:
            answer = await anyio.to_thread.run_sync(admission.review_online, review)
        return 200, orjson.dumps(answer)

    def _refuse(self, status: int, message: str) -> tuple[int, bytes]:
        self._metrics.bad_requests.labels(status=str(status)).inc()
        log.warning("refused a request with %d: %s", status, message)
        return status, _error_body(message)


JSON_CONTENT = (b"content-type", b"application/json")


def _content_headers(scope: Scope) -> tuple[str, str]:
    """The request's media type (lowercase, parameters dropped) and declared length."""
    content_type = declared = ""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1").split(";")[0].strip().lower()
        elif name == b"content-length":
            declared = value.decode("latin-1")
    return content_type, declared


async def _read_capped(receive: Receive) -> bytes | None:
    """The whole body, or as much as shows it is over the cap; None when the client
    disconnected first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > MAX_BODY_BYTES or not message.get("more_body", False):
            return b"".join(chunks)


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})
