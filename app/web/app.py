"""HTTP routes: /mutate for AdmissionReviews, health, readiness and metrics."""

import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
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
    """Every admission review goes through `/mutate`, so it is answered here, in front of
    the framework: FastAPI's routing, middleware and dependency resolution cost a no-op
    route about twice what the plain ASGI call does, more than the review itself."""

    def __init__(self, admission: Admission, metrics: Metrics, rest: ASGIApp) -> None:
        self._admission = admission
        self._metrics = metrics
        self._rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/mutate":
            await self._rest(scope, receive, send)
            return
        request = Request(scope, receive)
        if request.method != "POST":
            response: Response = JSONResponse(
                {"error": "method not allowed"}, status_code=405, headers={"allow": "POST"}
            )
        else:
            try:
                response = await self._answer(request)
            except Exception as error:
                # Admission turns its own failures into answers; this is the web layer's.
                # The type only: a message could quote the body.
                log.error("internal error answering a review: %s", type(error).__name__)
                response = JSONResponse({"error": "internal error"}, status_code=500)
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> Response:
        metrics, admission = self._metrics, self._admission
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(metrics, 415, "expected Content-Type application/json")
        body = await _read_capped(request)
        if body is None:
            return _error(metrics, 413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            review = parse_review(body, admission.kinds)
        except BadReviewError as error:
            return _error(metrics, 400, str(error))
        # Most reviews (Pods of a pinned ReplicaSet) are decided by the object alone and
        # answered here; the Kubernetes client is synchronous, so the rest go to a thread.
        answer = admission.review_offline(review)
        if answer is None:
            answer = await anyio.to_thread.run_sync(admission.review_online, review)
        return Response(orjson.dumps(answer), media_type="application/json")


async def _read_capped(request: Request) -> bytes | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(metrics: Metrics, status: int, message: str) -> JSONResponse:
    metrics.bad_requests.labels(status=str(status)).inc()
    log.warning("refused a request with %d: %s", status, message)
    content: dict[str, Any] = {"error": message}
    return JSONResponse(content, status_code=status)
