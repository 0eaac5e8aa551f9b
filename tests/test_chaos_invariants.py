"""The chaos test's invariants, each shown holding and each shown caught, without a server."""

import base64
import datetime
from dataclasses import replace
from typing import Any

from app.domain.pinning import encode_pins
from app.domain.references import SourceKind
from app.domain.snapshots import build_snapshot
from chaos.invariants import (
    EXAMPLES_KEPT,
    EXPECTED_DENIALS,
    INVARIANTS,
    Denial,
    Fault,
    Holder,
    Lags,
    MemoryBound,
    Snapshot,
    SourceHistory,
    Tally,
    classify_denial,
    content_violation,
    fingerprint,
    holder_record,
    holders_of,
    memory_verdict,
    missing_snapshots,
    old_orphans,
    revision_mismatches,
    snapshot_record,
    template_key,
    uncalled_for_denials,
)

KEY = b"k" * 32
NS = "shop"
T0 = 1_800_000_000.0  # a whole second: creationTimestamps have no fraction


def stamp(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def source(name: str, data: dict[str, str], kind: str = "ConfigMap") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "data": data,
    }
    if kind == "Secret":
        obj["type"] = "Opaque"
    return obj


def snapshot_of(
    name: str, data: dict[str, str], created: float, kind: str = "ConfigMap"
) -> Snapshot:
    source_kind = "configmap" if kind == "ConfigMap" else "secret"
    obj = build_snapshot(KEY, source_kind, source(name, data, kind))
    obj["metadata"] |= {
        "uid": f"uid-{obj['metadata']['name']}",
        "creationTimestamp": stamp(created),
    }
    record = snapshot_record(obj, KEY)
    assert record is not None
    return record


def pod_spec(*snapshots: Snapshot) -> dict[str, Any]:
    return {
        "containers": [{"name": "app", "image": "app:1"}],
        "volumes": [
            {"name": s.name, "configMap": {"name": s.name}}
            if s.kind == "configmap"
            else {"name": s.name, "secret": {"secretName": s.name}}
            for s in snapshots
        ],
    }


def pins_of(*snapshots: Snapshot) -> str:
    return encode_pins({f"{s.kind}/{s.source}": s.name for s in snapshots})


def replica_set(name: str, created: float, *snapshots: Snapshot) -> Holder:
    return holder_record(
        {
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{name}",
                "creationTimestamp": stamp(created),
            },
            "spec": {
                "template": {
                    "metadata": {"annotations": {"configpin.io/pins": pins_of(*snapshots)}},
                    "spec": pod_spec(*snapshots),
                }
            },
        },
        "ReplicaSet",
    )


def pod(name: str, owner: tuple[str, str], *snapshots: Snapshot, hash_label: str = "") -> Holder:
    labels = {"controller-revision-hash": hash_label} if hash_label else {}
    return holder_record(
        {
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{name}",
                "labels": labels,
                "annotations": {"configpin.io/pins": pins_of(*snapshots)},
                "ownerReferences": [{"kind": owner[0], "name": owner[1], "controller": True}],
            },
            "spec": pod_spec(*snapshots),
        },
        "Pod",
    )


def history(
    *observed: tuple[float, dict[str, str]], kind: SourceKind = "configmap"
) -> SourceHistory:
    result = SourceHistory()
    for when, data in observed:
        result.observe(when, fingerprint(KEY, kind, {"data": data}))
    return result


V1, V2 = {"k": "v1"}, {"k": "v2"}


# -- invariant 1 ---------------------------------------------------------------------------


def test_a_revision_pinning_the_content_its_source_held_passes() -> None:
    snap = snapshot_of("app", V2, T0 - 5)
    revision = replica_set("web-1", T0, snap)
    journal = history((T0 - 100, V1), (T0 - 5, V2))
    assert content_violation(revision, "configmap/app", snap, journal, [], Lags()) is None


def test_a_stale_content_is_caught() -> None:
    snap = snapshot_of("app", V1, T0 - 100)
    revision = replica_set("web-2", T0, snap)
    journal = history((T0 - 100, V1), (T0 - 60, V2))
    problem = content_violation(revision, "configmap/app", snap, journal, [], Lags())
    assert problem is not None and "no longer held" in problem
    assert "ReplicaSet shop/web-2" in problem and snap.name in problem


def test_a_fault_stretches_the_admission_window() -> None:
    """Replaced 40 s before the revision: stale without a fault, in time when an etcd pause
    held the write for 30 s."""
    snap = snapshot_of("app", V1, T0 - 100)
    revision = replica_set("web-3", T0, snap)
    journal = history((T0 - 100, V1), (T0 - 40, V2))
    assert content_violation(revision, "configmap/app", snap, journal, [], Lags()) is not None
    pause = [Fault("etcd-pause", T0 - 35, T0 - 5)]
    assert content_violation(revision, "configmap/app", snap, journal, pause, Lags()) is None


def test_a_revision_made_late_is_judged_from_when_its_template_was_written() -> None:
    """The controller made the ReplicaSet 30 s after the template was written, and the
    source changed in between: the template's admission is what pinned it."""
    snap = snapshot_of("app", V1, T0 - 100)
    revision = replica_set("web-late", T0, snap)
    journal = history((T0 - 100, V1), (T0 - 20, V2))
    assert content_violation(revision, "configmap/app", snap, journal, [], Lags()) is not None
    assert (
        content_violation(
            revision, "configmap/app", snap, journal, [], Lags(), template_seen=T0 - 30
        )
        is None
    )


def test_a_read_older_than_the_workloads_previous_version_is_stale() -> None:
    """The API server admits an update on the version it read: a pin to content replaced
    before that version was written is stale, even within the admission window."""
    snap = snapshot_of("app", V1, T0 - 100)
    revision = replica_set("web-rys", T0, snap)
    journal = history((T0 - 100, V1), (T0 - 10, V2))
    args = (revision, "configmap/app", snap, journal)
    assert content_violation(*args, [], Lags(), template_seen=T0) is None  # within 15 s
    stale = content_violation(*args, [], Lags(), template_seen=T0, previous_seen=T0 - 2)
    assert stale is not None and "no longer held" in stale
    # A fault may have held the watch back: the bound is not used then.
    pause = [Fault("etcd-pause", T0 - 4, T0 - 1)]
    assert content_violation(*args, pause, Lags(), template_seen=T0, previous_seen=T0 - 2) is None


def test_a_read_older_than_the_rollout_request_is_stale() -> None:
    """An edit, then at once a rollout: the pin must hold the edited content."""
    snap = snapshot_of("app", V1, T0 - 100)
    revision = replica_set("web-ryw", T0, snap)
    journal = history((T0 - 100, V1), (T0 - 3, V2))
    args = (revision, "configmap/app", snap, journal, [], Lags())
    assert content_violation(*args, template_seen=T0) is None
    stale = content_violation(*args, template_seen=T0, request_sent=T0 - 1)
    assert stale is not None and "no longer held" in stale
    # A request sent long before the template was seen did not make it: not used.
    assert content_violation(*args, template_seen=T0, request_sent=T0 - 60) is None


def test_a_workload_and_its_revisions_share_one_template_key() -> None:
    template = {
        "metadata": {"labels": {"app": "web"}, "annotations": {"configpin.io/pins": "{}"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }
    deployment = {"spec": {"template": template}}
    copied = {
        "metadata": {
            **template["metadata"],
            "labels": {"app": "web", "pod-template-hash": "5d8f"},
            "creationTimestamp": None,
        },
        "spec": template["spec"],
    }
    replica_set_obj = {"spec": {"template": copied}}
    revision = {"data": {"spec": {"template": {**template, "$patch": "replace"}}}}
    key = template_key(deployment, "Deployment")
    assert key is not None
    assert template_key(replica_set_obj, "ReplicaSet") == key
    assert template_key(revision, "ControllerRevision") == key
    changed = {
        "spec": {
            "template": {**template, "spec": {"containers": [{"name": "app", "image": "app:2"}]}}
        }
    }
    assert template_key(changed, "Deployment") != key


def test_a_content_the_source_never_held_is_caught() -> None:
    snap = snapshot_of("app", {"k": "forged"}, T0 - 5)
    revision = replica_set("web-4", T0, snap)
    journal = history((T0 - 100, V1))
    problem = content_violation(revision, "configmap/app", snap, journal, [], Lags())
    assert problem is not None and "never held" in problem


def test_a_content_the_source_got_only_later_is_caught() -> None:
    snap = snapshot_of("app", V2, T0 + 60)
    revision = replica_set("web-5", T0, snap)
    journal = history((T0 - 100, V1), (T0 + 60, V2))
    problem = content_violation(revision, "configmap/app", snap, journal, [], Lags())
    assert problem is not None and "only got after" in problem


def test_a_recorded_edit_counts_before_the_watch_sees_it() -> None:
    """The driver records an edit before sending it; the rollout that follows may be
    admitted before the watch delivers the edit."""
    snap = snapshot_of("app", V2, T0)
    revision = replica_set("web-6", T0, snap)
    journal = history((T0 - 100, V1), (T0 + 8, V2))  # the watch saw it late
    assert content_violation(revision, "configmap/app", snap, journal, [], Lags()) is not None
    journal.record(T0 - 1, fingerprint(KEY, "configmap", {"data": V2}))
    assert content_violation(revision, "configmap/app", snap, journal, [], Lags()) is None


def test_a_snapshot_of_another_source_is_caught() -> None:
    snap = snapshot_of("other", V1, T0 - 5)
    revision = replica_set("web-7", T0, snap)
    journal = history((T0 - 100, V1))
    problem = content_violation(revision, "configmap/app", snap, journal, [], Lags())
    assert problem is not None and "snapshot is of configmap other" in problem


def test_a_source_first_seen_after_the_revision_is_not_judged() -> None:
    snap = snapshot_of("app", V1, T0 - 500)
    revision = replica_set("web-8", T0 - 400, snap)
    journal = history((T0, V2))
    assert content_violation(revision, "configmap/app", snap, journal, [], Lags()) is None


def test_a_secret_snapshot_is_compared_by_its_base64_data_and_never_shows_a_value() -> None:
    secret_value = base64.b64encode(b"hunter2").decode()
    snap = snapshot_of("db", {"password": secret_value}, T0 - 5, kind="Secret")
    revision = replica_set("web-9", T0, snap)
    recorded = SourceHistory()
    recorded.record(T0 - 200, fingerprint(KEY, "secret", {"data": {"password": "b3RoZXI="}}))
    recorded.observe(T0 - 100, fingerprint(KEY, "secret", {"data": {"password": "b3RoZXI="}}))
    problem = content_violation(revision, "secret/db", snap, recorded, [], Lags())
    assert problem is not None and "never held" in problem
    assert secret_value not in problem and "hunter2" not in problem
    assert snap.fingerprint != secret_value and "hunter2" not in snap.fingerprint
    recorded.observe(T0 - 10, fingerprint(KEY, "secret", {"data": {"password": secret_value}}))
    assert content_violation(revision, "secret/db", snap, recorded, [], Lags()) is None


def test_a_reference_to_a_snapshot_that_does_not_exist_is_found() -> None:
    snap = snapshot_of("app", V1, T0)
    holder = pod("web-1-a", ("ReplicaSet", "web-1"), snap)
    assert missing_snapshots(holder, {snap.key}, {snap.key}) == []
    assert missing_snapshots(holder, set(), {snap.key}) == [snap.key]


def test_a_live_reference_to_a_source_is_not_a_snapshot() -> None:
    snap = snapshot_of("app", V1, T0)
    holder = pod("web-1-a", ("ReplicaSet", "web-1"), snap)
    holder_with_live = replace(
        holder, references=holder.references | {("configmap", "kube-root-ca.crt")}
    )
    assert holder_with_live.snapshots() == {snap.key}


# -- invariant 2 ---------------------------------------------------------------------------


def test_pods_of_one_revision_pinning_the_same_snapshots_pass() -> None:
    snap = snapshot_of("app", V1, T0)
    holders = [
        replica_set("web-1", T0, snap),
        pod("web-1-a", ("ReplicaSet", "web-1"), snap),
        pod("web-1-b", ("ReplicaSet", "web-1"), snap),
    ]
    assert revision_mismatches(holders, {snap.key}) == []


def test_a_pod_of_a_revision_pinning_other_snapshots_is_caught() -> None:
    old, new = snapshot_of("app", V1, T0), snapshot_of("app", V2, T0)
    holders = [
        replica_set("web-1", T0, old),
        pod("web-1-a", ("ReplicaSet", "web-1"), old),
        pod("web-1-b", ("ReplicaSet", "web-1"), new),
        pod("web-2-a", ("ReplicaSet", "web-2"), new),  # another revision: fine
    ]
    ((revision, example),) = revision_mismatches(holders, {old.key, new.key})
    assert revision == "shop/ReplicaSet/web-1"
    assert old.name in example and new.name in example and "Pod shop/web-1-b" in example


def test_statefulset_pods_are_grouped_by_their_controller_revision() -> None:
    old, new = snapshot_of("app", V1, T0), snapshot_of("app", V2, T0)
    a = pod("db-0", ("StatefulSet", "db"), old, hash_label="db-5d8f")
    b = pod("db-1", ("StatefulSet", "db"), new, hash_label="db-5d8f")
    c = pod("db-2", ("StatefulSet", "db"), new, hash_label="db-7c9a")
    assert a.revision == "ControllerRevision/db-5d8f"
    assert [r for r, _ in revision_mismatches([a, b, c], set())] == [
        "shop/ControllerRevision/db-5d8f"
    ]
    daemon = pod("agent-x", ("DaemonSet", "agent"), old, hash_label="6b7c")
    assert daemon.revision == "ControllerRevision/agent-6b7c"


# -- invariant 3 ---------------------------------------------------------------------------


def test_the_holders_of_a_deleted_snapshot_are_those_naming_it() -> None:
    snap, other = snapshot_of("app", V1, T0), snapshot_of("app", V2, T0)
    holders = [
        replica_set("web-1", T0, snap),
        pod("web-1-a", ("ReplicaSet", "web-1"), snap),
        pod("web-2-a", ("ReplicaSet", "web-2"), other),
    ]
    assert [str(h) for h in holders_of(snap.key, holders)] == [
        "Pod shop/web-1-a",
        "ReplicaSet shop/web-1",
    ]
    unreferenced = snapshot_of("app", {"k": "v3"}, T0)
    assert holders_of(unreferenced.key, holders) == []


# -- invariant 4 ---------------------------------------------------------------------------


def test_an_old_orphan_is_caught_and_a_referenced_or_young_one_is_not() -> None:
    grace, sweep = 60.0, 10.0
    now = T0 + 1000
    held = snapshot_of("app", V1, T0)
    orphan = snapshot_of("app", V2, T0)
    young = snapshot_of("app", {"k": "young"}, now - grace - sweep + 5)
    holders = [replica_set("web-1", T0, held)]
    (late,) = old_orphans([held, orphan, young], holders, now, grace, sweep, {})
    assert orphan.name in late and "referenced by nothing" in late


def test_an_orphan_is_timed_from_when_its_last_holder_went() -> None:
    grace, sweep = 60.0, 10.0
    now = T0 + 1000
    released = snapshot_of("app", V1, T0)
    recently = {released.key: now - 5}
    assert old_orphans([released], [], now, grace, sweep, recently) == []
    long_ago = {released.key: now - 50}
    assert len(old_orphans([released], [], now, grace, sweep, long_ago)) == 1


def test_a_snapshot_being_deleted_is_timed_from_the_release_it_waits_for() -> None:
    grace, sweep, settle = 60.0, 10.0, 30.0
    now = T0 + 1000
    asked = replace(snapshot_of("app", V1, T0), deletion_asked=now - 35)
    assert old_orphans([asked], [], now, grace, sweep, {}, settle) == []
    stuck = replace(asked, deletion_asked=now - 45)
    (late,) = old_orphans([stuck], [], now, grace, sweep, {}, settle)
    assert "being deleted" in late


# -- invariant 5 ---------------------------------------------------------------------------

UNREACHABLE = (
    'Internal error occurred: failed calling webhook "workloads.configpin.io": failed to call '
    'webhook: Post "https://127.0.0.1:9443/mutate?timeout=10s": dial tcp 127.0.0.1:9443: '
    "connect: connection refused"
)
API_FAILURE = (
    'admission webhook "workloads.configpin.io" denied the request: configpin could not read '
    "configmap shop/app: no answer within 3s; nothing was changed, retry the request"
)


def test_denials_are_classified_by_what_refused_them() -> None:
    assert classify_denial(UNREACHABLE) == "webhook-unreachable"
    assert classify_denial(API_FAILURE) == "api-failure"
    assert (
        classify_denial(
            'admission webhook "workloads.configpin.io" denied the request: configpin failed '
            "(internal error); retry the request"
        )
        == "internal-error"
    )
    assert (
        classify_denial(
            'admission webhook "w" denied the request: configpin: required configmap shop/x '
            "does not exist"
        )
        == "missing-source"
    )
    assert classify_denial("Timeout: request did not complete within 60s") == "api-unavailable"
    assert classify_denial("quota exceeded") == "other"


def test_a_denial_in_a_fault_window_that_calls_for_it_passes() -> None:
    kill = Fault("webhook-kill", T0, T0 + 10)
    denials = [
        Denial(T0 + 3, "webhook-unreachable", "kubectl"),
        Denial(T0 + 20, "webhook-unreachable", "ReplicaSet shop/web-1"),  # within tolerance
    ]
    assert uncalled_for_denials(denials, [kill], EXPECTED_DENIALS, 15.0) == []


def test_a_denial_outside_every_window_or_of_another_kind_is_caught() -> None:
    kill = Fault("webhook-kill", T0, T0 + 10)
    burst = Fault("snapshot-burst", T0 + 100, T0 + 110)
    denials = [
        Denial(T0 + 60, "webhook-unreachable", "kubectl"),  # no fault then
        Denial(T0 + 5, "api-failure", "kubectl"),  # a killed webhook does not cause it
        Denial(T0 + 105, "api-failure", "kubectl"),  # nothing fails in a burst
    ]
    caught = uncalled_for_denials(denials, [kill, burst], EXPECTED_DENIALS, 15.0)
    assert len(caught) == 3
    assert all("kubectl" in example for example in caught)


# -- invariant 6 ---------------------------------------------------------------------------


def samples(values: list[float], every: float = 2.0) -> list[tuple[float, float]]:
    return [(T0 + i * every, v) for i, v in enumerate(values)]


def test_memory_that_settles_after_warm_up_is_flat() -> None:
    rss = [40.0] * 10 + [76.0 + (i % 3) for i in range(200)]  # warm-up, then noise
    verdict = memory_verdict(1, samples(rss), MemoryBound())
    assert verdict.judged and verdict.flat


def test_memory_growing_with_the_work_is_caught() -> None:
    rss = [76.0 + i * 0.2 for i in range(300)]  # 60 MiB over the run
    verdict = memory_verdict(1, samples(rss), MemoryBound())
    assert verdict.judged and not verdict.flat
    assert verdict.end_mib - verdict.baseline_mib > verdict.allowed_growth_mib


def test_a_process_too_short_lived_is_not_judged() -> None:
    verdict = memory_verdict(1, samples([50.0, 90.0, 130.0]), MemoryBound())
    assert not verdict.judged and verdict.flat


# -- counting ------------------------------------------------------------------------------


def test_the_tally_counts_every_violation_and_keeps_a_few_examples() -> None:
    tally = Tally()
    for index in range(EXAMPLES_KEPT + 5):
        tally.add(INVARIANTS[2], f"snapshot {index}")
    report = tally.as_dict()
    assert set(report) == set(INVARIANTS)
    assert report[INVARIANTS[2]]["violations"] == EXAMPLES_KEPT + 5
    assert len(report[INVARIANTS[2]]["examples"]) == EXAMPLES_KEPT
    assert report[INVARIANTS[0]] == {"violations": 0, "examples": []}


def test_a_secret_left_opaque_by_default_has_the_same_fingerprint() -> None:
    data = {"data": {"password": "aHVudGVyMg=="}}
    assert fingerprint(KEY, "secret", data) == fingerprint(
        KEY, "secret", {**data, "type": "Opaque"}
    )
    assert fingerprint(KEY, "secret", data) != fingerprint(b"x" * 32, "secret", data)
