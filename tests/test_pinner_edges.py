"""The pinning sequence in the edge flows: rollbacks that differ only in config, missing
sources on UPDATE, platform data, crafted pins, deleted snapshots, bounded work, honest
failures and no I/O for what needs none."""

import copy
import itertools
from typing import Any

import pytest

from app.admission.pinner import OnMissing, Policy
from app.admission.sources import SourceUnavailableError
from app.domain import labels
from app.domain.naming import content_digest, snapshot_name
from app.domain.references import find_references
from app.domain.selectors import label_selector
from app.domain.snapshots import build_snapshot
from tests.fakes import MemorySources
from tests.test_pinner import (
    CONFIG,
    DB,
    KEY,
    NS,
    OPTED_IN,
    bare_pod,
    cm,
    deployment,
    pins_of,
    pod_spec,
    run,
    secret,
    snap,
    template_names,
    world,
)

EDITED = cm("app-config", {"k": "v2"})


def with_env(obj: dict[str, Any], env: list[dict[str, Any]]) -> dict[str, Any]:
    """`kubectl set env`: the stored object with the first container's env replaced."""
    changed = copy.deepcopy(obj)
    changed["spec"]["template"]["spec"]["containers"][0]["env"] = env
    return changed


class TestRollbackThatDiffersOnlyInConfig:
    def test_undo_to_a_revision_with_the_same_template_and_older_config_brings_it_back(
        self,
    ) -> None:
        sources = world()
        first = run(deployment(), sources)[1]  # revision 1 on A
        sources.add(EDITED)  # the ConfigMap edited to B
        base_env = first["spec"]["template"]["spec"]["containers"][0]["env"]
        second = run(with_env(first, [*base_env, {"name": "FOO", "value": "bar"}]), sources, first)[
            1
        ]  # `kubectl set env FOO=bar`: pins B
        assert template_names(second)[0] == snap(EDITED)
        third = run(with_env(second, base_env), sources, second)[1]  # `set env FOO-`: still B
        assert template_names(third)[0] == snap(EDITED)
        # `kubectl rollout undo --to-revision=1`: revision 1's template, pins A, written back.
        undo = copy.deepcopy(third)
        undo["spec"]["template"] = copy.deepcopy(first["spec"]["template"])
        _, patched = run(undo, sources, third)
        assert template_names(patched)[0] == snap(CONFIG)
        assert pins_of(patched)["configmap/app-config"] == snap(CONFIG)


class TestMissingSourceOnUpdate:
    def test_a_new_missing_reference_never_unpins_the_others(self) -> None:
        sources = world()
        stored = run(deployment(), sources)[1]
        replaced = deployment(image="web:2")  # `kubectl replace` of a new manifest
        replaced["spec"]["template"]["spec"]["containers"][0]["envFrom"].append(
            {"configMapRef": {"name": "not-yet"}}
        )
        outcome, patched = run(replaced, sources, stored)
        assert outcome.allowed and outcome.unpinned == 1
        assert template_names(patched) == (snap(CONFIG), snap(DB), snap(CONFIG))
        env_from = patched["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert env_from[1]["configMapRef"]["name"] == "not-yet"
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG), "secret/db": snap(DB)}
        assert "configmap shop/not-yet" in (outcome.event or "")
        # A re-apply of the same manifest keeps it so.
        _, reapplied = run(replaced, sources, patched)
        assert reapplied["spec"]["template"] == patched["spec"]["template"]

    def test_deny_still_refuses(self) -> None:
        sources = world()
        stored = run(deployment(), sources)[1]
        replaced = deployment(image="web:2")
        replaced["spec"]["template"]["spec"]["volumes"].append(
            {"name": "x", "configMap": {"name": "not-yet"}}
        )
        policy = Policy(key=KEY, missing_source=OnMissing.DENY)
        outcome, _ = run(replaced, sources, stored, policy=policy)
        assert not outcome.allowed and "configmap shop/not-yet" in (outcome.denial or "")


def service_account_volume() -> dict[str, Any]:
    """The volume the ServiceAccount admission plugin adds to every Pod."""
    return {
        "name": "kube-api-access-x7k2p",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


class TestPlatformData:
    def test_the_service_account_volume_is_live_as_a_whole(self) -> None:
        spec = pod_spec()
        spec["volumes"].append(service_account_volume())
        refs = find_references(spec, "/spec")
        [ca] = [r for r in refs if r.name == "kube-root-ca.crt"]
        assert ca.live_by_default
        sources = world(CONFIG, DB, cm("kube-root-ca.crt", {"ca.crt": "pem"}))
        _, patched = run(bare_pod(spec), sources)
        assert patched["spec"]["volumes"][-1] == service_account_volume()
        assert (NS, "configmap", "kube-root-ca.crt") not in sources.reads
        assert template_names(patched) == (snap(CONFIG), snap(DB), snap(CONFIG))  # the rest

    def test_only_a_projected_token_volume_is_the_service_accounts(self) -> None:
        # Named like it, without a token: a volume like any other, pinned. A volume that is
        # not an object (no API server sends one) does not hide the real one after it.
        look_alike = service_account_volume()
        look_alike["projected"]["sources"] = [{"configMap": {"name": "app-config"}}, "x"]
        spec = pod_spec()
        spec["volumes"] += [look_alike, None, service_account_volume()]
        refs = find_references(spec, "/spec")
        assert [r.live_by_default for r in refs if r.pointer.startswith("/spec/volumes/1/")] == [
            False
        ]
        assert [r.live_by_default for r in refs if r.pointer.startswith("/spec/volumes/3/")] == [
            True
        ]

    def test_published_ca_bundles_stay_live_by_name_and_the_list_extends(self) -> None:
        spec = pod_spec()
        names = ["kube-root-ca.crt", "istio-ca-root-cert", "openshift-service-ca.crt", "trust"]
        spec["volumes"] += [{"name": n, "configMap": {"name": n}} for n in names]
        objects = [CONFIG, DB, *(cm(n, {"ca": "pem"}) for n in names)]
        policy = Policy(key=KEY, live_sources=Policy.live_sources | {"configmap/trust"})
        _, patched = run(bare_pod(spec), world(*objects), policy=policy)
        assert [v["configMap"]["name"] for v in patched["spec"]["volumes"][1:]] == names
        assert set(pins_of(patched)) == {"configmap/app-config", "secret/db"}

    def test_cert_manager_secrets_and_controlled_sources_stay_live(self) -> None:
        certificate = secret(
            "db",
            {"tls.crt": "eA=="},
            type_="kubernetes.io/tls",
            annotations={"cert-manager.io/certificate-name": "db"},
        )
        owner = {
            "apiVersion": "x/v1",
            "kind": "Bundle",
            "name": "b",
            "uid": "u",
            "controller": True,
        }
        owned = cm("app-config", {"k": "v"}, ownerReferences=[owner])
        outcome, patched = run(deployment(), world(owned, certificate))
        assert outcome.patch == [] and template_names(patched) == ("app-config", "db", "app-config")
        # An ownerReference that is not a controller's does not count.
        referenced = cm("app-config", {"k": "v"}, ownerReferences=[{**owner, "controller": False}])
        _, patched = run(deployment(), world(referenced, DB))
        assert template_names(patched)[0] == snap(referenced)


class TestBoundedWork:
    def many_sources(self, count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        spec = pod_spec()
        spec["volumes"] = [{"name": f"v{i}", "configMap": {"name": f"c{i}"}} for i in range(count)]
        return spec, [cm(f"c{i}", {"k": str(i)}) for i in range(count)]

    def test_exactly_as_many_sources_as_the_cap_are_pinned(self) -> None:
        spec, objects = self.many_sources(3)  # and app-config, db: five
        outcome, _ = run(
            deployment(spec), world(CONFIG, DB, *objects), policy=Policy(key=KEY, max_sources=5)
        )
        assert outcome.result == "pinned"

    def test_more_distinct_sources_than_the_cap_follows_the_kinds_failure_setting(self) -> None:
        spec, objects = self.many_sources(6)
        sources = world(CONFIG, DB, *objects)
        policy = Policy(key=KEY, max_sources=5)
        refused, _ = run(deployment(spec), sources, policy=policy)
        limit = "8 distinct sources, more than the limit of 5 (CONFIGPIN_MAX_SOURCES)"
        assert (refused.allowed, refused.status_code) == (False, 403)
        assert refused.denial == f"configpin the Deployment references {limit}"
        admitted, _ = run(bare_pod(spec), sources, policy=policy)
        assert admitted.allowed and admitted.patch == []
        assert admitted.warnings == (
            f"configpin: Pod admitted unpinned, the Pod references {limit}",
        )
        assert sources.reads == [] and sources.created == []
        # A policy's refusal, not the API failing: not counted as an API error.
        assert not refused.api_failure and not admitted.api_failure

    def test_no_call_and_no_snapshot_after_the_review_deadline(self) -> None:
        spec, objects = self.many_sources(4)
        sources = world(CONFIG, DB, *objects)
        ticks = itertools.count()
        # Every call to the clock is one second: the namespace read, two source reads, done.
        policy = Policy(key=KEY, review_seconds=3.5, clock=lambda: float(next(ticks)))
        outcome, _ = run(deployment(spec), sources, policy=policy)
        assert not outcome.allowed and outcome.status_code == 503
        assert "deadline of 3.5s passed" in (outcome.denial or "")
        assert len(sources.reads) == 2 and sources.created == []

    def test_a_create_past_the_deadline_names_the_snapshot_and_those_made_before(self) -> None:
        ticks = itertools.count()
        # The namespace, two reads, the first create: the second create is one too many.
        policy = Policy(key=KEY, review_seconds=4.5, clock=lambda: float(next(ticks)))
        outcome, _ = run(deployment(), world(), policy=policy)
        assert outcome.denial == (
            f"configpin could not create snapshot configmap {NS}/{snap(CONFIG)}: the review's "
            f"deadline of 4.5s passed; snapshots created before the failure: secret "
            f"{NS}/{snap(DB)}, retry the request"
        )

    @pytest.mark.parametrize(
        ("seconds", "call"),
        [(0.5, f"read namespace {NS}"), (1.5, f"read secret {NS}/db")],
    )
    def test_a_read_past_the_deadline_names_what_it_would_have_read(
        self, seconds: float, call: str
    ) -> None:
        ticks = itertools.count()
        policy = Policy(key=KEY, review_seconds=seconds, clock=lambda: float(next(ticks)))
        outcome, _ = run(deployment(), world(), policy=policy)
        assert outcome.denial == (
            f"configpin could not {call}: the review's deadline of {seconds}s passed; "
            "nothing was changed, retry the request"
        )

    def test_a_call_at_the_deadline_itself_still_starts(self) -> None:
        ticks = itertools.count()
        # The namespace, two reads (the second at 3s, the deadline): the first create is late.
        policy = Policy(key=KEY, review_seconds=3, clock=lambda: float(next(ticks)))
        outcome, _ = run(deployment(), world(), policy=policy)
        assert outcome.denial == (
            f"configpin could not create snapshot secret {NS}/{snap(DB)}: the review's "
            "deadline of 3s passed; nothing was changed, retry the request"
        )

    def test_a_long_list_of_missing_sources_is_capped_in_the_message(self) -> None:
        spec, _ = self.many_sources(60)
        outcome, _ = run(deployment(spec), world(CONFIG, DB))
        [warning] = outcome.warnings
        assert outcome.unpinned == 60  # each reference left unpinned is counted
        assert warning.endswith("and 50 more") and "configmap shop/c0" in warning
        assert len(warning) < 400


class TestOptOut:
    def test_opting_a_pinned_deployment_out_unpins_it(self) -> None:
        sources = world()
        stored = run(deployment(), sources)[1]
        opted_out = copy.deepcopy(stored)
        opted_out["spec"]["template"]["metadata"]["annotations"][labels.INJECT] = "false"
        reads = len(sources.reads)
        _, patched = run(opted_out, sources, stored)
        assert template_names(patched) == ("app-config", "db", "app-config")
        assert labels.PINS not in patched["spec"]["template"]["metadata"]["annotations"]
        assert len(sources.reads) == reads  # no I/O needed

    def test_opting_out_unpins_by_the_pins_of_the_stored_object_or_of_the_request(self) -> None:
        sources = world()
        stored = run(deployment(), sources)[1]
        unpinned = ("app-config", "db", "app-config")
        # The request dropped the pins annotation with the opt-out: the stored one maps back.
        bare = copy.deepcopy(stored)
        bare["spec"]["template"]["metadata"]["annotations"] = {labels.INJECT: "false"}
        outcome, patched = run(bare, sources, stored)
        assert (outcome.result, template_names(patched)) == ("unpinned", unpinned)
        # A pinned manifest created anew with the opt-out: its own pins map back.
        created = copy.deepcopy(stored)
        created["spec"]["template"]["metadata"]["annotations"][labels.INJECT] = "false"
        outcome, patched = run(created, sources)
        assert (outcome.result, template_names(patched)) == ("unpinned", unpinned)


def canary_template() -> dict[str, Any]:
    """A template naming `canary-config` and claiming it is a snapshot of `app-config`."""
    obj = deployment(
        pod_spec(config="canary-config"),
        annotations={labels.PINS: '{"configmap/app-config":"canary-config"}'},
    )
    return obj


class TestCraftedPins:
    def test_a_pin_that_names_no_snapshot_of_its_source_is_a_plain_reference(self) -> None:
        canary = cm("canary-config", {"k": "canary"})
        sources = world(CONFIG, DB, canary)
        _, stored = run(canary_template(), sources)
        assert template_names(stored)[0] == snap(canary)
        assert pins_of(stored)["configmap/canary-config"] == snap(canary)
        # `kubectl set image` afterwards keeps canary's content.
        _, updated = run(
            deployment(pod_spec(config="canary-config"), image="web:2"), sources, stored
        )
        assert template_names(updated)[0] == snap(canary)

    def test_a_stored_crafted_pin_is_not_taken_for_its_claimed_source(self) -> None:
        # Stored before the namespace opted in: the pins were never seen by configpin.
        canary = cm("canary-config", {"k": "canary"})
        sources = world(CONFIG, DB, canary)
        stored = canary_template()
        changed = copy.deepcopy(stored)
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        _, updated = run(changed, sources, stored)
        assert template_names(updated)[0] == snap(canary)

    def test_a_look_alike_snapshot_is_neither_trusted_nor_reused(self) -> None:
        fake = build_snapshot(KEY, "configmap", cm("app-config", {"k": "other"}))
        fake["metadata"]["name"] = snap(CONFIG)  # our labels, the right name, other content
        sources = world(CONFIG, DB)
        sources.add(fake)
        outcome, _ = run(deployment(), sources)
        assert not outcome.allowed and "taken by another object" in (outcome.denial or "")
        # Named directly, it is a plain reference: snapshotted under its own name.
        _, patched = run(deployment(pod_spec(config=snap(CONFIG))), world(CONFIG, DB, fake))
        assert template_names(patched)[0] != snap(CONFIG)

    def test_a_pin_key_whose_source_is_not_an_object_name_is_ignored(self) -> None:
        sources = world()
        obj = deployment(annotations={labels.PINS: '{"configmap/../x":"app-config"}'})
        _, patched = run(obj, sources)
        assert not any(key[2] == "../x" for key in sources.reads)
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG), "secret/db": snap(DB)}

    def test_snapshots_made_before_names_were_bound_are_still_recognised(self) -> None:
        legacy = build_snapshot(KEY, "configmap", CONFIG)
        legacy_digest = content_digest(KEY, "configmap", CONFIG, bound=False)
        legacy["metadata"]["name"] = snapshot_name("app-config", legacy_digest)
        sources = world(CONFIG, DB)
        sources.add(legacy)
        obj = deployment(pod_spec(config=legacy["metadata"]["name"]))
        _, patched = run(obj, sources)
        assert template_names(patched)[0] == legacy["metadata"]["name"]
        assert pins_of(patched)["configmap/app-config"] == legacy["metadata"]["name"]


class TestDeletedSnapshot:
    def rolled_back(self, policy: Policy | None = None) -> tuple[Any, dict[str, Any], Any]:
        sources = world()
        first = run(deployment(), sources)[1]
        sources.add(EDITED)
        second = run(deployment(image="web:2"), sources, first)[1]
        del sources.objects[(NS, "configmap", snap(CONFIG))]  # deleted by hand
        undo = copy.deepcopy(second)
        undo["spec"]["template"] = copy.deepcopy(first["spec"]["template"])
        outcome, patched = run(undo, sources, second, policy=policy)
        return outcome, patched, sources

    def test_recreated_when_the_source_holds_that_content_again(self) -> None:
        sources = world()
        first = run(deployment(), sources)[1]
        del sources.objects[(NS, "configmap", snap(CONFIG))]
        sources.add(EDITED)
        second = run(deployment(image="web:2"), sources, first)[1]
        sources.add(CONFIG)  # the edit reverted: the source holds revision 1's content again
        undo = copy.deepcopy(second)
        undo["spec"]["template"] = copy.deepcopy(first["spec"]["template"])
        outcome, patched = run(undo, sources, second)
        assert template_names(patched)[0] == snap(CONFIG) and outcome.warnings == ()
        assert (NS, "configmap", snap(CONFIG)) in sources.objects

    def test_a_warning_and_an_event_when_it_cannot_be(self) -> None:
        outcome, patched, _ = self.rolled_back()
        assert template_names(patched)[0] == snap(CONFIG)  # the rollback itself stands
        assert outcome.allowed and f"configmap shop/{snap(CONFIG)}" in outcome.warnings[0]
        assert outcome.event == outcome.warnings[0]

    def test_the_message_names_what_is_missing_then_what_is_lost(self) -> None:
        sources = world()
        first = run(deployment(), sources)[1]
        sources.add(EDITED)
        second = run(deployment(image="web:2"), sources, first)[1]
        del sources.objects[(NS, "configmap", snap(CONFIG))]
        del sources.objects[(NS, "secret", "db")]
        undo = copy.deepcopy(second)
        undo["spec"]["template"] = copy.deepcopy(first["spec"]["template"])
        undo["spec"]["template"]["spec"]["volumes"].append(
            {"name": "extra", "secret": {"secretName": "extra"}}
        )
        outcome, _ = run(undo, sources, second)
        assert outcome.warnings == (
            f"configpin: required source not found, left unpinned: secret {NS}/extra; "
            f"snapshot not found: configmap {NS}/{snap(CONFIG)} (deleted, and its source "
            "changed since: Pods cannot start until it exists)",
        )

    def test_refused_with_missing_source_deny(self) -> None:
        outcome, _, _ = self.rolled_back(Policy(key=KEY, missing_source=OnMissing.DENY))
        assert not outcome.allowed and snap(CONFIG) in (outcome.denial or "")


class TestHonestFailures:
    def test_a_failure_after_a_create_says_which_snapshots_exist(self) -> None:
        spec = pod_spec()
        spec["volumes"].append({"name": "f", "configMap": {"name": "features"}})
        sources = world(CONFIG, DB, cm("features", {"a": "b"}))
        sources.fail_next("create", "configmap", NS, "features")  # the last of three
        outcome, _ = run(deployment(spec), sources)
        assert len(sources.created) == 2
        assert not outcome.allowed and "nothing was changed" not in (outcome.denial or "")
        created = [s["metadata"]["name"] for s in sources.created]
        assert created and all(name in (outcome.denial or "") for name in created)

    def test_admitted_unpinned_it_still_says_which_snapshots_exist(self) -> None:
        spec = pod_spec()
        spec["volumes"].append({"name": "f", "configMap": {"name": "features"}})
        sources = world(CONFIG, DB, cm("features", {"a": "b"}))
        sources.fail_next("create", "configmap", NS, "features")
        outcome, _ = run(bare_pod(spec), sources)  # a bare Pod fails open
        kinds = {"ConfigMap": "configmap", "Secret": "secret"}
        created = [f"{kinds[s['kind']]} {NS}/{s['metadata']['name']}" for s in sources.created]
        [warning] = outcome.warnings
        assert outcome.allowed and outcome.api_failure and len(created) == 2
        assert warning.startswith("configpin: Pod admitted unpinned, could not create")
        assert warning.endswith(f"; snapshots created before the failure: {', '.join(created)}")

    def test_a_snapshot_being_deleted_or_a_name_taken_is_not_pinned_to(self) -> None:
        deleting = build_snapshot(KEY, "configmap", CONFIG)
        deleting["metadata"]["deletionTimestamp"] = "2026-11-27T10:00:00Z"
        squatter = cm(snap(CONFIG), {"other": "content"})
        for holder, why in (
            (deleting, "could not use snapshot {}: the snapshot is being deleted"),
            (squatter, "could not create snapshot {}: the name is taken by another object"),
        ):
            sources = world()
            sources.add(holder)
            outcome, _ = run(deployment(), sources)
            created = f"secret {NS}/{snap(DB)}"
            assert (outcome.allowed, outcome.status_code) == (False, 503)
            assert outcome.denial == (
                f"configpin {why.format(f'configmap {NS}/{snap(CONFIG)}')}; snapshots created "
                f"before the failure: {created}, retry the request"
            )

    def test_nothing_written_says_so(self) -> None:
        sources = world()
        sources.fail_next("read", "secret", NS, "db")
        outcome, _ = run(deployment(), sources)
        assert "nothing was changed" in (outcome.denial or "")


class FailingNamespaces(MemorySources):
    def namespace_labels(self, namespace: str) -> Any:
        raise SourceUnavailableError("read", "namespace", "", namespace, "simulated outage")


class TestNoIoFirst:
    def test_an_unchanged_template_is_answered_while_the_api_is_down(self) -> None:
        sources = world()
        stored = run(deployment(), sources)[1]
        down = FailingNamespaces(OPTED_IN, [CONFIG, DB])
        relabelled = copy.deepcopy(stored)
        relabelled["metadata"]["labels"] = {"team": "shop"}
        outcome, _ = run(relabelled, down, stored)
        assert outcome.allowed and outcome.patch == []

    def test_the_namespace_failure_message_names_the_namespace_once(self) -> None:
        outcome, _ = run(deployment(), FailingNamespaces(OPTED_IN, [CONFIG, DB]))
        assert "could not read namespace shop:" in (outcome.denial or "")
        assert "/shop" not in (outcome.denial or "")


class TestSelectors:
    def test_match_labels_and_match_expressions_become_one_query(self) -> None:
        selector = {
            "matchLabels": {"tier": "web"},
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web", "api"]},
                {"key": "track", "operator": "NotIn", "values": ["canary"]},
                {"key": "example.com/owned", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }
        assert label_selector(selector) == (
            "tier=web,app in (web,api),track notin (canary),example.com/owned,!legacy"
        )
        assert label_selector({"matchExpressions": [{"key": "app", "operator": "Exists"}]}) == (
            "app"
        )

    def test_what_the_api_server_would_refuse_gives_no_query(self) -> None:
        for selector in (
            None,
            {},
            {"matchLabels": {"a": "b,c"}},
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            {"matchExpressions": [{"key": "a b", "operator": "Exists"}]},
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b c"]}]},
            {"matchLabels": ["a=b"], "matchExpressions": []},
            {"matchLabels": {"a b": "c"}},
            {"matchLabels": {f"{PREFIX_253}x/a": "b"}},  # a prefix over 253 characters
            {"matchLabels": {f"{'n' * 64}": "b"}},  # a name over 63
        ):
            assert label_selector(selector) is None, selector

    def test_a_key_at_the_longest_the_api_server_takes_is_a_query(self) -> None:
        key = f"{PREFIX_253}/{'n' * 63}"
        assert label_selector({"matchLabels": {key: "b"}}) == f"{key}=b"


# A DNS subdomain of 253 characters, the longest a label key's prefix may be.
PREFIX_253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
