"""What holds a snapshot, who owns it, what may be swept or released: pure logic."""

import datetime
import json
from typing import Any

from app.domain import labels
from app.domain.lifecycle import (
    FINALIZER,
    Holder,
    held_message,
    held_time,
    holder_of,
    is_ours,
    may_release,
    may_sweep,
    missing_owner_references,
    referenced_names,
    snapshot_key,
)
from app.domain.snapshots import build_snapshot

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
GRACE = datetime.timedelta(minutes=10)
SETTLE = datetime.timedelta(seconds=30)
PINS = json.dumps({"configmap/app-config": "app-config-aaaaaaaaaa", "secret/db": "db-bbbbbbbbbb"})


def stamp(ago: datetime.timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot(**meta: Any) -> dict[str, Any]:
    made = build_snapshot(b"k" * 32, "configmap", {"metadata": {"name": "app-config"}, "data": {}})
    made["metadata"] |= {"namespace": "shop", "uid": "s-1", "resourceVersion": "7"}
    made["metadata"] |= meta
    return made


def template(annotations: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations}, "spec": spec}


def rs(uid: str = "rs-1", **meta: Any) -> Holder:
    return holder_of(
        {"metadata": {"name": f"web-{uid}", "uid": uid, **meta}}, "ReplicaSet", "apps/v1"
    )


class TestReferencedNames:
    def test_pins_and_references_of_every_pod_template_in_any_kind(self) -> None:
        spec = {
            "containers": [
                {"name": "a", "envFrom": [{"configMapRef": {"name": "extra-cccccccccc"}}]}
            ]
        }
        cron_job = {
            "kind": "CronJob",
            "spec": {"jobTemplate": {"spec": {"template": template({labels.PINS: PINS}, spec)}}},
        }
        assert referenced_names(cron_job) == {
            ("configmap", "app-config-aaaaaaaaaa"),
            ("secret", "db-bbbbbbbbbb"),
            ("configmap", "extra-cccccccccc"),
        }

    def test_controller_revision_data_and_pod_metadata_count(self) -> None:
        revision = {
            "kind": "ControllerRevision",
            "data": {"spec": {"template": template({labels.PINS: PINS}, {})}},
        }
        pod_metadata_only = {"metadata": {"annotations": {labels.PINS: PINS}}}
        assert ("secret", "db-bbbbbbbbbb") in referenced_names(revision)
        assert referenced_names(pod_metadata_only) == referenced_names(revision)

    def test_pod_templates_in_a_list_count(self) -> None:
        # A custom kind with a pod template per group of workers (RayCluster's workerGroupSpecs).
        spec = {"containers": [{"name": "w", "envFrom": [{"secretRef": {"name": "extra"}}]}]}
        workers = {"template": template({labels.PINS: PINS}, spec)}
        assert referenced_names({"spec": {"workerGroupSpecs": [workers]}}) == {
            ("configmap", "app-config-aaaaaaaaaa"),
            ("secret", "db-bbbbbbbbbb"),
            ("secret", "extra"),
        }

    def test_a_malformed_pins_annotation_names_nothing_but_references_still_count(self) -> None:
        spec = {"containers": [], "volumes": [{"name": "v", "secret": {"secretName": "db-x"}}]}
        assert referenced_names(template({labels.PINS: "{not json"}, spec)) == {("secret", "db-x")}
        assert referenced_names(template({labels.PINS: '["a"]'}, {})) == set()
        # Read as the webhook reads pins: a key whose source is not an object name is no pin
        # (what the template runs with is in its references, which always count).
        crafted = json.dumps({"configmap/../x": "app-config-aaaaaaaaaa", "pod/p": "p-1"})
        assert referenced_names(template({labels.PINS: crafted}, {})) == set()


class TestOwnership:
    def test_replicasets_jobs_revisions_and_bare_pods_own_other_holders_do_not(self) -> None:
        assert rs().owns
        controlled = {"ownerReferences": [{"kind": "ReplicaSet", "uid": "x", "controller": True}]}
        assert not holder_of(
            {"metadata": {"name": "p", "uid": "p", **controlled}}, "Pod", "v1"
        ).owns
        assert holder_of({"metadata": {"name": "p", "uid": "p"}}, "Pod", "v1").owns
        assert holder_of({"metadata": {"name": "j", "uid": "j"}}, "Job", "batch/v1").owns
        assert not holder_of({"metadata": {"name": "d", "uid": "d"}}, "Deployment", "apps/v1").owns

    def test_missing_references_are_added_once_without_controller_or_blocking(self) -> None:
        owned = snapshot(ownerReferences=[rs("rs-1").owner_reference()])
        deployment = holder_of({"metadata": {"name": "web", "uid": "d"}}, "Deployment", "apps/v1")
        added = missing_owner_references(owned, [rs("rs-1"), rs("rs-2"), rs("rs-2"), deployment])
        assert added == [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs-2", "uid": "rs-2"}
        ]
        assert missing_owner_references(owned, [rs("rs-1")]) == []

    def test_every_new_owner_is_added_in_uid_order(self) -> None:
        assert missing_owner_references(snapshot(), [rs("rs-2"), rs("rs-1")]) == [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs-1", "uid": "rs-1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs-2", "uid": "rs-2"},
        ]


class TestSweep:
    def test_an_old_orphan_is_swept(self) -> None:
        assert may_sweep(snapshot(creationTimestamp=stamp(GRACE)), False, NOW, GRACE)

    def test_young_held_owned_or_deleting_snapshots_are_not(self) -> None:
        old = stamp(GRACE * 2)
        assert not may_sweep(snapshot(creationTimestamp=stamp(GRACE / 2)), False, NOW, GRACE)
        assert not may_sweep(snapshot(creationTimestamp=old), True, NOW, GRACE)
        owned = snapshot(creationTimestamp=old, ownerReferences=[rs().owner_reference()])
        assert not may_sweep(owned, False, NOW, GRACE)
        deleting = snapshot(creationTimestamp=old, deletionTimestamp=old)
        assert not may_sweep(deleting, False, NOW, GRACE)

    def test_never_a_source_or_an_object_configpin_did_not_make(self) -> None:
        old = stamp(GRACE * 2)
        source = {"kind": "ConfigMap", "metadata": {"name": "app-config", "creationTimestamp": old}}
        assert not is_ours(source)
        assert not may_sweep(source, False, NOW, GRACE)
        # Someone's object wearing the labels but not made by configpin.
        lookalike = snapshot(creationTimestamp=old)
        del lookalike["metadata"]["annotations"]
        assert not may_sweep(lookalike, False, NOW, GRACE)


class TestRelease:
    def deleting(self, ago: datetime.timedelta, **meta: Any) -> dict[str, Any]:
        return snapshot(deletionTimestamp=stamp(ago), **meta)

    def test_released_once_nothing_holds_it_and_the_deletion_settled(self) -> None:
        assert may_release(self.deleting(SETTLE), [], False, NOW, SETTLE)
        assert not may_release(self.deleting(SETTLE / 2), [], False, NOW, SETTLE)

    def test_kept_while_anything_holds_it(self) -> None:
        assert not may_release(self.deleting(SETTLE * 10), [rs()], False, NOW, SETTLE)

    def test_a_terminating_namespace_releases_at_once(self) -> None:
        assert may_release(self.deleting(datetime.timedelta(0)), [rs()], True, NOW, SETTLE)

    def test_nothing_to_release_without_a_deletion_or_the_finalizer(self) -> None:
        assert not may_release(snapshot(), [], True, NOW, SETTLE)
        assert not may_release(self.deleting(SETTLE, finalizers=["other"]), [], True, NOW, SETTLE)
        assert FINALIZER in snapshot()["metadata"]["finalizers"]

    def test_held_time_and_message(self) -> None:
        assert held_time(self.deleting(SETTLE), NOW) == SETTLE.total_seconds()
        assert held_time(snapshot(), NOW) == 0.0
        holders = [rs(str(i)) for i in range(7)]
        message = held_message("app-config-aaaaaaaaaa", holders)
        assert message.startswith("snapshot app-config-aaaaaaaaaa is being deleted but is still")
        assert "ReplicaSet/web-0" in message and message.endswith("and 2 more")

    def test_held_from_the_moment_of_the_deletion_never_before(self) -> None:
        assert held_time(self.deleting(datetime.timedelta(0)), NOW) == 0.0
        # A deletion stamped ahead of this clock (skew between API server and controller).
        assert held_time(self.deleting(-datetime.timedelta(seconds=5)), NOW) == 0.0

    def test_the_held_event_names_five_holders_then_counts_the_others(self) -> None:
        five = [rs(str(i)) for i in range(5)]
        in_use = "snapshot app-config-aaaaaaaaaa is being deleted but is still in use by"
        names = "ReplicaSet/web-0, ReplicaSet/web-1, ReplicaSet/web-2, ReplicaSet/web-3"
        assert held_message("app-config-aaaaaaaaaa", five) == (
            f"{in_use} {names}, ReplicaSet/web-4"
        )
        assert held_message("app-config-aaaaaaaaaa", [*five, rs("5")]) == (
            f"{in_use} {names}, ReplicaSet/web-4 and 1 more"
        )


def test_snapshot_key() -> None:
    assert snapshot_key(snapshot()) == ("shop", "configmap", snapshot()["metadata"]["name"])


def test_every_kind_of_the_table_and_the_revisions_are_listed_for_holders() -> None:
    from app.controller.lifecycle import holder_collections
    from app.domain.workloads import WorkloadKind, Workloads

    custom = WorkloadKind("example.com", "v1", "Thing", "things", "/spec/template", ("CREATE",))
    listed = {kind: path for _, kind, path in holder_collections(Workloads([custom]))}
    assert listed["Thing"] == "/apis/example.com/v1/things"
    assert listed["Pod"] == "/api/v1/pods"
    assert {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"} <= set(listed)
    assert listed["ControllerRevision"] == "/apis/apps/v1/controllerrevisions"
