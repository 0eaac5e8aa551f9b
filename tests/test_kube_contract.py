"""RawApi and ClusterSources against every answer kube-apiserver can give on their paths,
through the real client and transport (a scripted HTTP server on loopback, not a mock).

What the real API server does on the happy paths is covered by tests/e2e; here are the
answers that are hard to provoke there: a 409 race with another replica, a foreign object
holding a snapshot's name, an object deleted right after the 409, 403s from a narrowed
role, 5xx, an API server that does not answer in time, and the namespace-label cache.
"""

import base64
import copy
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from app.admission.sources import SourceUnavailableError
from app.domain import labels
from app.domain.snapshots import build_snapshot
from app.domain.workloads import Rollbacks
from app.kube.api import ApiError, ApiUnreachableError
from app.kube.sources import NAMESPACE_CACHE_SECONDS, ClusterSources
from tests.fakes import config_map, secret
from tests.scriptedapi import TOKEN, ScriptedApi, status_body

KEY = b"contract-test-key-0123456789"
NS = "shop"
SENTINEL = "Qv3-contract-sentinel-Lp8"  # a Secret value: never in an error
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"
NAMESPACE = f"/api/v1/namespaces/{NS}"
FAILURES = [
    (403, "Forbidden"),
    (422, "Invalid"),
    (429, "TooManyRequests"),
    (500, "InternalError"),
    (503, "ServiceUnavailable"),
    (504, "Timeout"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    with ScriptedApi() as scripted:
        yield scripted
        assert scripted.unexpected == [], "requests the test did not script"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sources(api: ScriptedApi, clock: Clock) -> ClusterSources:
    return ClusterSources(api.raw_api(), clock=clock)


def the_secret() -> dict[str, Any]:
    value = base64.b64encode(SENTINEL.encode()).decode()
    return secret(NS, "db", {"password": value}, uid="u-1", resourceVersion="7")


def snapshot_of(source: dict[str, Any]) -> dict[str, Any]:
    kind = "secret" if source["kind"] == "Secret" else "configmap"
    return build_snapshot(KEY, kind, source)


def failure(code: int, reason: str) -> dict[str, Any]:
    """An error body that quotes the object sent, as a 422 does: it must not be repeated."""
    return status_body(reason, code, f'Secret "db" is invalid: data.password: {SENTINEL}')


def assert_no_secret_in(error: BaseException) -> None:
    assert SENTINEL not in str(error)
    assert base64.b64encode(SENTINEL.encode()).decode() not in str(error)


# --- RawApi ------------------------------------------------------------------------------


class TestRawApi:
    def test_get_returns_the_object_and_sends_the_token(self, api: ScriptedApi) -> None:
        api.answer("GET", f"{SECRETS}/db", 200, the_secret())
        assert api.raw_api().get(f"{SECRETS}/db") == the_secret()
        [request] = api.requests
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["accept"] == "application/json"

    def test_get_of_a_missing_object_is_none(self, api: ScriptedApi) -> None:
        api.answer("GET", f"{SECRETS}/db", 404, status_body("NotFound", 404))
        assert api.raw_api().get(f"{SECRETS}/db") is None

    @pytest.mark.parametrize(("code", "reason"), FAILURES)
    def test_an_error_status_is_an_api_error_without_the_body(
        self, api: ScriptedApi, code: int, reason: str
    ) -> None:
        api.answer("GET", f"{SECRETS}/db", code, failure(code, reason))
        with pytest.raises(ApiError) as raised:
            api.raw_api().get(f"{SECRETS}/db")
        assert raised.value.status == code
        assert str(raised.value).startswith(f"the API answered {code}")
        assert_no_secret_in(raised.value)

    def test_create_posts_the_exact_json(self, api: ScriptedApi) -> None:
        body = snapshot_of(the_secret())
        api.answer("POST", SECRETS, 201, {**body, "metadata": {**body["metadata"], "uid": "x"}})
        created = api.raw_api().create(SECRETS, body)
        assert created["metadata"]["uid"] == "x"
        [request] = api.requests
        assert request.body == body
        assert request.headers["content-type"] == "application/json"

    def test_create_or_get_after_a_409_returns_what_holds_the_name(self, api: ScriptedApi) -> None:
        body = snapshot_of(the_secret())
        name = body["metadata"]["name"]
        api.answer("POST", SECRETS, 409, status_body("AlreadyExists", 409))
        api.answer("GET", f"{SECRETS}/{name}", 200, body)
        assert api.raw_api().create_or_get(SECRETS, body) == (body, False)

    def test_create_or_get_when_the_object_vanished_after_the_409(self, api: ScriptedApi) -> None:
        body = snapshot_of(the_secret())
        api.answer("POST", SECRETS, 409, status_body("AlreadyExists", 409))
        api.answer(
            "GET", f"{SECRETS}/{body['metadata']['name']}", 404, status_body("NotFound", 404)
        )
        with pytest.raises(ApiError) as raised:
            api.raw_api().create_or_get(SECRETS, body)
        assert raised.value.status == 409 and "vanished" in str(raised.value)

    @pytest.mark.parametrize(("code", "reason"), FAILURES)
    def test_create_or_get_other_failures_are_not_followed_by_a_get(
        self, api: ScriptedApi, code: int, reason: str
    ) -> None:
        api.answer("POST", SECRETS, code, failure(code, reason))
        with pytest.raises(ApiError) as raised:
            api.raw_api().create_or_get(SECRETS, snapshot_of(the_secret()))
        assert raised.value.status == code and len(api.requests) == 1
        assert_no_secret_in(raised.value)

    @pytest.mark.parametrize("method", ["GET", "POST"])
    def test_no_answer_within_the_timeout_is_one_attempt_then_unreachable(
        self, api: ScriptedApi, method: str
    ) -> None:
        # The timeout bounds the call: the webhook's own deadline must not be spent on
        # retries the caller does not know about.
        for _ in range(4):
            api.answer(method, SECRETS, 200, {}, delay=3)
        raw = api.raw_api(timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(ApiUnreachableError, match=r"no answer within 0\.5s"):
            raw.request(method, SECRETS, body={} if method == "POST" else None)
        assert time.monotonic() - started < 2.0  # four attempts take 2 s at least
        assert api.calls(method, SECRETS) == 1

    def test_nothing_listening_is_unreachable(self) -> None:
        with ScriptedApi() as stopped:
            raw = stopped.raw_api()
        # The server is gone: nothing listens on its port any more.
        with pytest.raises(ApiUnreachableError, match="connection failed"):
            raw.get(f"{SECRETS}/db")


# --- ClusterSources ----------------------------------------------------------------------


class TestNamespaceLabels:
    def test_labels_are_read_then_cached_for_the_cache_period(
        self, api: ScriptedApi, sources: ClusterSources, clock: Clock
    ) -> None:
        api.answer("GET", NAMESPACE, 200, {"metadata": {"name": NS, "labels": {"a": "1"}}})
        api.answer("GET", NAMESPACE, 200, {"metadata": {"name": NS, "labels": {"a": "2"}}})
        assert sources.namespace_labels(NS) == {"a": "1"}
        clock.now += NAMESPACE_CACHE_SECONDS - 0.1
        assert sources.namespace_labels(NS) == {"a": "1"}
        assert api.calls("GET", NAMESPACE) == 1
        clock.now += 0.1  # an opt-out is followed within the period
        assert sources.namespace_labels(NS) == {"a": "2"}
        assert api.calls("GET", NAMESPACE) == 2

    def test_a_namespace_without_labels_has_none(
        self, api: ScriptedApi, sources: ClusterSources
    ) -> None:
        api.answer("GET", NAMESPACE, 200, {"metadata": {"name": NS}})
        assert sources.namespace_labels(NS) == {}

    def test_a_missing_namespace_is_none_and_cached_too(
        self, api: ScriptedApi, sources: ClusterSources, clock: Clock
    ) -> None:
        api.answer("GET", NAMESPACE, 404, status_body("NotFound", 404))
        assert sources.namespace_labels(NS) is None
        clock.now += 1
        assert sources.namespace_labels(NS) is None
        assert api.calls("GET", NAMESPACE) == 1

    def test_each_namespace_is_cached_on_its_own(
        self, api: ScriptedApi, sources: ClusterSources
    ) -> None:
        api.answer("GET", NAMESPACE, 200, {"metadata": {"labels": {"a": "1"}}})
        api.answer("GET", "/api/v1/namespaces/other", 200, {"metadata": {"labels": {"b": "2"}}})
        assert sources.namespace_labels(NS) == {"a": "1"}
        assert sources.namespace_labels("other") == {"b": "2"}

    @pytest.mark.parametrize(("code", "reason"), FAILURES)
    def test_a_failure_is_reported_and_not_cached(
        self, api: ScriptedApi, sources: ClusterSources, code: int, reason: str
    ) -> None:
        api.answer("GET", NAMESPACE, code, status_body(reason, code))
        api.answer("GET", NAMESPACE, 200, {"metadata": {"labels": {"a": "1"}}})
        with pytest.raises(
            SourceUnavailableError, match=f"namespace {NS}: the API answered {code}"
        ):
            sources.namespace_labels(NS)
        assert sources.namespace_labels(NS) == {"a": "1"}


class TestRead:
    def test_an_object_is_read_each_time_never_cached(
        self, api: ScriptedApi, sources: ClusterSources
    ) -> None:
        edited = copy.deepcopy(the_secret())
        edited["data"]["password"] = "b3RoZXI="
        api.answer("GET", f"{SECRETS}/db", 200, the_secret())
        api.answer("GET", f"{SECRETS}/db", 200, edited)
        assert sources.read(NS, "secret", "db") == the_secret()
        assert sources.read(NS, "secret", "db") == edited

    def test_a_missing_source_is_none(self, api: ScriptedApi, sources: ClusterSources) -> None:
        api.answer("GET", f"{CONFIGMAPS}/app", 404, status_body("NotFound", 404))
        assert sources.read(NS, "configmap", "app") is None

    def test_names_are_one_quoted_path_segment(
        self, api: ScriptedApi, sources: ClusterSources
    ) -> None:
        api.answer("GET", "/api/v1/namespaces/a%2Fb/configmaps/..%2Fx%3Fy", 404, {})
        assert sources.read("a/b", "configmap", "../x?y") is None

    @pytest.mark.parametrize(("code", "reason"), FAILURES)
    def test_a_failure_names_the_source_and_nothing_it_holds(
        self, api: ScriptedApi, sources: ClusterSources, code: int, reason: str
    ) -> None:
        api.answer("GET", f"{SECRETS}/db", code, failure(code, reason))
        with pytest.raises(SourceUnavailableError) as raised:
            sources.read(NS, "secret", "db")
        assert str(raised.value).startswith(
            f"could not read secret {NS}/db: the API answered {code}"
        )
        assert_no_secret_in(raised.value)

    def test_no_answer_in_time(self, api: ScriptedApi, clock: Clock) -> None:
        api.answer("GET", f"{SECRETS}/db", 200, the_secret(), delay=3)
        slow = ClusterSources(api.raw_api(timeout_seconds=0.5), clock=clock)
        with pytest.raises(SourceUnavailableError, match="secret shop/db: no answer within"):
            slow.read(NS, "secret", "db")


class TestCreateSnapshot:
    def test_created(self, api: ScriptedApi, sources: ClusterSources) -> None:
        snapshot = snapshot_of(the_secret())
        api.answer("POST", SECRETS, 201, snapshot)
        assert sources.create_snapshot(snapshot) is None
        assert api.requests[0].body == snapshot

    def test_a_409_hands_back_our_identical_snapshot(
        self, api: ScriptedApi, sources: ClusterSources
    ) -> None:
        snapshot = snapshot_of(config_map(NS, "app", {"k": "v"}))
        name = snapshot["metadata"]["name"]
        stored = copy.deepcopy(snapshot)
        stored["metadata"] |= {"uid": "s-1", "resourceVersion": "9"}  # set by the server
        api.answer("POST", CONFIGMAPS, 409, status_body("AlreadyExists", 409))
        api.answer("GET", f"{CONFIGMAPS}/{name}", 200, stored)
        assert sources.create_snapshot(snapshot) == stored

    @pytest.mark.parametrize(
        "holder",
        [
            # A user's own ConfigMap that happens to have the name.
            lambda s: config_map(NS, s["metadata"]["name"], {"k": "theirs"}),
            # Our labels' digest without our manager label: not ours.
            lambda s: {
                **s,
                "metadata": {
                    **s["metadata"],
                    "labels": {labels.DIGEST: s["metadata"]["labels"][labels.DIGEST]},
                },
            },
            # Our snapshot of other content under the name (a digest label edited by hand).
            lambda s: {
                **s,
                "metadata": {
                    **s["metadata"],
                    "labels": {**s["metadata"]["labels"], labels.DIGEST: "bcdfghjklm"},
                },
            },
        ],
        ids=["user-object", "digest-without-manager", "other-digest"],
    )
    def test_a_409_on_a_foreign_object_hands_it_back_to_be_judged(
        self, api: ScriptedApi, sources: ClusterSources, holder: Any
    ) -> None:
        # Whether it may be reused is decided with the key, by the pinning sequence
        # (tests/test_pinner_edges.py: a look-alike is neither trusted nor reused).
        snapshot = snapshot_of(config_map(NS, "app", {"k": "v"}))
        name = snapshot["metadata"]["name"]
        api.answer("POST", CONFIGMAPS, 409, status_body("AlreadyExists", 409))
        api.answer("GET", f"{CONFIGMAPS}/{name}", 200, holder(snapshot))
        assert sources.create_snapshot(snapshot) == holder(snapshot)

    def test_a_409_then_the_object_is_gone(self, api: ScriptedApi, sources: ClusterSources) -> None:
        snapshot = snapshot_of(the_secret())
        api.answer("POST", SECRETS, 409, status_body("AlreadyExists", 409))
        api.answer("GET", f"{SECRETS}/{snapshot['metadata']['name']}", 404, {})
        with pytest.raises(SourceUnavailableError, match="answered 409"):
            sources.create_snapshot(snapshot)

    @pytest.mark.parametrize(("code", "reason"), FAILURES)
    def test_a_409_then_a_failing_get(
        self, api: ScriptedApi, sources: ClusterSources, code: int, reason: str
    ) -> None:
        snapshot = snapshot_of(the_secret())
        api.answer("POST", SECRETS, 409, status_body("AlreadyExists", 409))
        api.answer("GET", f"{SECRETS}/{snapshot['metadata']['name']}", code, failure(code, reason))
        with pytest.raises(SourceUnavailableError, match=f"answered {code}") as raised:
            sources.create_snapshot(snapshot)
        assert_no_secret_in(raised.value)

    @pytest.mark.parametrize(("code", "reason"), FAILURES)
    def test_a_failed_create(
        self, api: ScriptedApi, sources: ClusterSources, code: int, reason: str
    ) -> None:
        snapshot = snapshot_of(the_secret())
        api.answer("POST", SECRETS, code, failure(code, reason))
        with pytest.raises(SourceUnavailableError) as raised:
            sources.create_snapshot(snapshot)
        name = snapshot["metadata"]["name"]
        assert str(raised.value).startswith(
            f"could not create snapshot secret {NS}/{name}: the API answered {code}"
        )
        assert_no_secret_in(raised.value)


class TestRevisionTemplates:
    # A Deployment's matchLabels and matchExpressions, as label_selector renders them.
    LABELS = "app=web,tier in (front)"
    SELECTOR = f"labelSelector={quote(LABELS, safe='')}"

    @staticmethod
    def owned(name: str, owner_uid: str, controller: bool | None) -> dict[str, Any]:
        owner: dict[str, Any] = {"kind": "Deployment", "name": "web", "uid": owner_uid}
        if controller is not None:
            owner["controller"] = controller
        return {"metadata": {"name": name, "ownerReferences": [owner]}}

    def items(self, template_of: Any) -> list[dict[str, Any]]:
        return [
            {**self.owned(name, uid, controller), **template_of(name)}
            for name, uid, controller in [
                ("ours", "uid-1", True),
                ("not-controller", "uid-1", False),
                ("no-flag", "uid-1", None),
                ("another-owner", "uid-2", True),
            ]
        ]

    def test_replica_sets_by_selector_and_controller(
        self, api: ScriptedApi, sources: ClusterSources
    ) -> None:
        items = self.items(lambda name: {"spec": {"template": {"spec": {"image": name}}}})
        path = f"/apis/apps/v1/namespaces/{NS}/replicasets?{self.SELECTOR}"
        api.answer("GET", path, 200, {"kind": "ReplicaSetList", "items": items})
        templates = sources.revision_templates(NS, Rollbacks.REPLICA_SETS, "uid-1", self.LABELS)
        assert templates == [{"spec": {"image": "ours"}}]

    def test_controller_revisions_give_the_template_of_their_patch(
        self, api: ScriptedApi, sources: ClusterSources
    ) -> None:
        # `data` is the strategic merge patch `rollout undo` applies.
        items = self.items(
            lambda name: {
                "data": {"spec": {"template": {"spec": {"image": name}, "$patch": "replace"}}}
            }
        )
        path = f"/apis/apps/v1/namespaces/{NS}/controllerrevisions?{self.SELECTOR}"
        api.answer("GET", path, 200, {"kind": "ControllerRevisionList", "items": items})
        kind = Rollbacks.CONTROLLER_REVISIONS
        templates = sources.revision_templates(NS, kind, "uid-1", self.LABELS)
        assert templates == [{"spec": {"image": "ours"}}]

    def test_a_kind_without_revisions_asks_nothing(self, sources: ClusterSources) -> None:
        assert sources.revision_templates(NS, Rollbacks.NONE, "uid-1", self.LABELS) == []

    @pytest.mark.parametrize(("code", "reason"), FAILURES)
    def test_a_failure_is_reported(
        self, api: ScriptedApi, sources: ClusterSources, code: int, reason: str
    ) -> None:
        path = f"/apis/apps/v1/namespaces/{NS}/replicasets?{self.SELECTOR}"
        api.answer("GET", path, code, status_body(reason, code))
        with pytest.raises(SourceUnavailableError, match=f"replicasets of workload {NS}/uid-1: "):
            sources.revision_templates(NS, Rollbacks.REPLICA_SETS, "uid-1", self.LABELS)
