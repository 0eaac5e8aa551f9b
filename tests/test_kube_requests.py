"""The API request counter's labels: verb and resource from the path's fixed segments."""

import pytest

from app.kube.api import verb_and_resource


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/namespaces/shop", ("get", "namespaces")),
        ("GET", "/api/v1/namespaces/shop/configmaps/app", ("get", "configmaps")),
        ("POST", "/api/v1/namespaces/shop/secrets", ("create", "secrets")),
        ("POST", "/api/v1/namespaces/shop/events", ("create", "events")),
        (
            "GET",
            "/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dweb",
            ("list", "replicasets"),
        ),
        (
            "PATCH",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/configpin",
            ("patch", "mutatingwebhookconfigurations"),
        ),
        (
            "POST",
            "/api/v1/namespaces/sys/serviceaccounts/configpin/token",
            ("create", "serviceaccounts/token"),
        ),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/sys/leases/x", ("update", "leases")),
        ("DELETE", "/api/v1/namespaces/shop/pods", ("deletecollection", "pods")),
        ("GET", "/version", ("get", "/version")),
    ],
)
def test_each_api_request_is_counted_by_verb_and_resource_never_by_name(
    method: str, path: str, expected: tuple[str, str]
) -> None:
    assert verb_and_resource(method, path) == expected
