"""Raw JSON requests to the API server through the official client's transport.

Objects stay plain dicts end to end: a typed round-trip can drop fields the client's
models do not know, and a snapshot must copy its source exactly.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from app.metrics import Metrics


@dataclass
class ApiError(Exception):
    """The API server answered with an error status. Carries no response body: a body
    can echo the object that was sent, Secret data included."""

    status: int
    reason: str

    def __str__(self) -> str:
        return f"the API answered {self.status} {self.reason}".rstrip()


# An object, or a list of JSON patch operations.
JsonBody = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class ApiUnreachableError(Exception):
    pass


def connect(kubeconfig: str | None) -> client.ApiClient:
    """A client from a kubeconfig file, or from the Pod's service account in a cluster."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    # One attempt per call, so that the caller's timeout bounds it: urllib3 would otherwise
    # try a GET that gets no answer four times, past the webhook's own deadline.
    configuration.retries = False
    return client.ApiClient(configuration)


def verb_and_resource(method: str, path: str) -> tuple[str, str]:
    """The Kubernetes verb and resource of a request, as the API server's audit names them:
    `GET /api/v1/namespaces/shop/configmaps/app` is (get, configmaps). Built from the path's
    fixed segments only, never from an object's name."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    if segments[:1] not in (["api"], ["apis"]):  # a non-resource URL: /version, /healthz
        return method.lower(), "/" + "/".join(segments)
    rest = segments[2:] if segments[0] == "api" else segments[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return method.lower(), ""
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    named = len(rest) >= 2
    verb = {
        "GET": "get" if named else "list",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
    }.get(method, method.lower())
    return verb, resource


class RawApi:
    def __init__(
        self, api_client: client.ApiClient, timeout_seconds: float, metrics: Metrics | None = None
    ) -> None:
        self._client = api_client
        self._timeout = timeout_seconds
        self._metrics = metrics

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when it does not exist."""
        try:
            return self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body=body)

    def create_or_get(
        self, collection: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """(the object, True) when created; (the object already there, False) when the name
        was taken, by another replica or a retry. Deciding whether that object is usable is
        the caller's."""
        try:
            return self.create(collection, body), True
        except ApiError as error:
            if error.status != 409:
                raise
        existing = self.get(f"{collection}/{quote(body['metadata']['name'], safe='')}")
        if existing is None:  # created and deleted again in between
            raise ApiError(409, "Conflict (the object vanished after AlreadyExists)")
        return existing, False

    def request(
        self,
        method: str,
        path: str,
        body: JsonBody | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        return self.request_with_headers(method, path, body, content_type)[0]

    def request_with_headers(
        self,
        method: str,
        path: str,
        body: JsonBody | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The answer and its headers (admission warnings arrive as `Warning` headers)."""
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        if self._metrics is not None:
            self._metrics.kube_requests.labels(*verb_and_resource(method, path)).inc()
        params = self._client.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self._client.call_api(*params, _request_timeout=self._timeout)
            data = response.read()  # type: ignore[no-untyped-call]
        except urllib3.exceptions.NewConnectionError:  # a TimeoutError subclass, not a timeout
            raise ApiUnreachableError("connection failed (NewConnectionError)") from None
        except urllib3.exceptions.TimeoutError:
            raise ApiUnreachableError(f"no answer within {self._timeout:g}s") from None
        except urllib3.exceptions.HTTPError as error:
            raise ApiUnreachableError(f"connection failed ({type(error).__name__})") from None
        except ApiException:  # the client's wrapper for TLS failures
            raise ApiUnreachableError("TLS handshake with the API server failed") from None
        if not 200 <= response.status < 300:
            raise ApiError(response.status, response.reason or "")
        parsed = json.loads(data) if data else {}
        return (parsed if isinstance(parsed, dict) else {}), list(response.headers.items())
