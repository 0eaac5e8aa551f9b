"""The pinning sequence, on configpin's in-memory Sources: every rule of semantics.md."""

import copy
import json
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.admission.pinner import OnFailure, OnMissing, Outcome, PinRequest, Policy, pin
from app.domain import labels
from app.domain.naming import content_digest, snapshot_name
from app.domain.workloads import POD
from tests.fakes import MemorySources

KEY = b"pinner-test-key-0123456789"
NS = "shop"
OPTED_IN = {NS: {labels.INJECT: labels.INJECT_ENABLED}, "other": {}}


def cm(name: str, data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, **meta},
        "data": data,
    }


def secret(name: str, data: dict[str, str], type_: str = "Opaque", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, **meta},
        "type": type_,
        "data": data,
    }


def snap(source: dict[str, Any]) -> str:
    kind = "secret" if source["kind"] == "Secret" else "configmap"
    return snapshot_name(source["metadata"]["name"], content_digest(KEY, kind, source))


def pod_spec(config: str = "app-config", db: str = "db") -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "web",
                "image": "web:1",
                "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": db, "key": "pw"}}}],
                "envFrom": [{"configMapRef": {"name": config}}],
            }
        ],
        "volumes": [{"name": "cfg", "configMap": {"name": config}}],
    }


def deployment(
    spec: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    image: str = "web:1",
) -> dict[str, Any]:
    spec = copy.deepcopy(spec or pod_spec())
    spec["containers"][0]["image"] = image
    template: dict[str, Any] = {"metadata": {"labels": {"app": "web"}}, "spec": spec}
    if annotations:
        template["metadata"]["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"template": template},
    }


def bare_pod(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": NS, **meta},
        "spec": spec or pod_spec(),
    }


CONFIG = cm("app-config", {"k": "v1"})
DB = secret("db", {"pw": "cGFzcw=="})


def world(*objects: dict[str, Any]) -> MemorySources:
    return MemorySources(OPTED_IN, objects or (CONFIG, DB))


def run(
    obj: dict[str, Any],
    sources: MemorySources,
    old: dict[str, Any] | None = None,
    policy: Policy | None = None,
    dry_run: bool = False,
    namespace: str = NS,
) -> tuple[Outcome, dict[str, Any]]:
    policy = policy or Policy(key=KEY)
    kind = policy.kinds.find_object(obj)
    assert kind is not None
    operation = "CREATE" if old is None else "UPDATE"
    outcome = pin(PinRequest(kind, operation, namespace, obj, old, dry_run), sources, policy)
    patched: dict[str, Any] = jsonpatch.apply_patch(obj, outcome.patch) if outcome.patch else obj
    return outcome, patched


def template_names(obj: dict[str, Any]) -> tuple[str, str, str]:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    container = spec["containers"][0]
    return (
        container["envFrom"][0]["configMapRef"]["name"],
        container["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        spec["volumes"][0]["configMap"]["name"],
    )


def pins_of(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj["spec"]["template"]["metadata"] if obj["kind"] == "Deployment" else obj["metadata"]
    result: dict[str, str] = json.loads(meta["annotations"][labels.PINS])
    return result


class TestCreate:
    def test_deployment_is_pinned_and_snapshots_created(self) -> None:
        sources = world()
        outcome, patched = run(deployment(), sources)
        assert outcome.result == "pinned" and outcome.allowed
        assert template_names(patched) == (snap(CONFIG), snap(DB), snap(CONFIG))
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG), "secret/db": snap(DB)}
        assert sorted(s["metadata"]["name"] for s in sources.created) == sorted(
            [snap(CONFIG), snap(DB)]
        )
        assert outcome.created == 2

    def test_second_review_of_the_output_changes_nothing_and_reads_only_its_pins(self) -> None:
        sources = world()
        _, patched = run(deployment(), sources)
        reads = len(sources.reads)
        again, _ = run(patched, sources)
        assert again.patch == [] and again.result == "unchanged" and again.created == 0
        # A reinvocation cannot be told from a crafted request: each pin it brings is read
        # once to prove it, the sources are not.
        assert sorted(sources.reads[reads:]) == [
            (NS, "configmap", snap(CONFIG)),
            (NS, "secret", snap(DB)),
        ]

    def test_each_source_is_read_once_per_review(self) -> None:
        sources = world()
        run(deployment(), sources)  # app-config is referenced twice, db once
        assert sorted(sources.reads) == [(NS, "configmap", "app-config"), (NS, "secret", "db")]

    def test_identical_snapshot_is_reused(self) -> None:
        sources = world()
        run(deployment(), sources)
        outcome, _ = run(deployment(), sources)
        assert outcome.created == 0 and outcome.reused == 2

    def test_dry_run_gives_the_same_patch_and_writes_nothing(self) -> None:
        dry_sources, real_sources = world(), world()
        dry, _ = run(deployment(), dry_sources, dry_run=True)
        real, _ = run(deployment(), real_sources)
        assert json.dumps(dry.patch) == json.dumps(real.patch)
        assert dry_sources.created == [] and len(real_sources.created) == 2

    def test_a_reference_to_a_snapshot_is_kept(self) -> None:
        sources = world()
        _, first = run(deployment(), sources)
        # Written by hand (or exported), without the pins annotation: read, seen as ours.
        del first["spec"]["template"]["metadata"]["annotations"]
        outcome, patched = run(first, sources)
        assert template_names(patched) == (snap(CONFIG), snap(DB), snap(CONFIG))
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG), "secret/db": snap(DB)}
        assert outcome.created == 0


class TestScope:
    def test_namespace_not_opted_in(self) -> None:
        outcome, _ = run(deployment(), world(), namespace="other")
        assert outcome.result == "skipped" and outcome.patch == []

    def test_unknown_namespace_and_never_touched_ones(self) -> None:
        for namespace in ("missing", "kube-system", "configpin"):
            sources = world()
            sources.namespaces[namespace] = {labels.INJECT: labels.INJECT_ENABLED}
            if namespace == "missing":
                del sources.namespaces[namespace]
            outcome, _ = run(
                deployment(),
                sources,
                namespace=namespace,
                policy=Policy(key=KEY, own_namespace="configpin"),
            )
            assert outcome.patch == [], namespace

    def test_workload_template_and_pod_opt_out(self) -> None:
        out = {labels.INJECT: "false"}
        workload = deployment()
        workload["metadata"]["annotations"] = out
        assert run(workload, world())[0].patch == []
        assert run(deployment(annotations=out), world())[0].patch == []
        assert run(bare_pod(annotations=out), world())[0].patch == []

    def test_source_opt_out_and_live_secret_types_stay_live(self) -> None:
        config = cm("app-config", {"k": "v"}, annotations={labels.INJECT: "false"})
        pull = secret("db", {"x": "eQ=="}, type_="kubernetes.io/dockerconfigjson")
        outcome, patched = run(deployment(), world(config, pull))
        assert template_names(patched) == ("app-config", "db", "app-config")
        assert outcome.patch == []

    def test_per_reference_live_keeps_only_that_reference(self) -> None:
        workload = deployment(annotations={labels.LIVE: "secret/db"})
        _, patched = run(workload, world())
        assert template_names(patched) == (snap(CONFIG), "db", snap(CONFIG))
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG)}


class TestUntrustedNames:
    def test_a_name_that_is_not_an_object_name_is_never_looked_up(self) -> None:
        # Webhooks run before validation: `../` must not walk the API path to another
        # namespace's Secret and copy it here.
        spec = pod_spec(db="../../namespaces/other/secrets/db")
        sources = world()
        outcome, patched = run(deployment(spec), sources)
        assert (NS, "secret", "../../namespaces/other/secrets/db") not in sources.reads
        assert template_names(patched)[1] == "../../namespaces/other/secrets/db"
        assert all("other" not in s["metadata"]["name"] for s in sources.created)
        assert outcome.allowed

    def test_a_template_whose_spec_or_metadata_is_not_an_object_is_left_alone(self) -> None:
        # No API server sends this (it decodes the object first), but anyone who can reach
        # the webhook can: nothing to pin, and no internal error.
        for template in ({"metadata": "x", "spec": {"containers": []}}, {"spec": ["x"]}):
            workload = deployment()
            workload["spec"]["template"] = template
            outcome, _ = run(workload, world())
            assert (outcome.result, outcome.patch) == ("unchanged", []), template


class TestMissing:
    def test_optional_missing_reference_is_left_as_is(self) -> None:
        spec = pod_spec()
        spec["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["optional"] = True
        outcome, patched = run(deployment(spec), world(CONFIG))
        assert outcome.warnings == ()
        assert template_names(patched) == (snap(CONFIG), "db", snap(CONFIG))

    def test_required_missing_source_is_left_as_written_and_the_rest_pinned(self) -> None:
        sources = world(CONFIG)
        outcome, patched = run(deployment(), sources)
        assert outcome.allowed and outcome.result == "missing-source"
        assert template_names(patched) == (snap(CONFIG), "db", snap(CONFIG))
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG)}
        assert outcome.warnings == (
            "configpin: required source not found, left unpinned: secret shop/db",
        )
        assert outcome.event == outcome.warnings[0] and outcome.event_reason == "SourceNotFound"
        assert outcome.unpinned == 1

    def test_missing_source_can_deny(self) -> None:
        outcome, _ = run(
            deployment(), world(CONFIG), policy=Policy(key=KEY, missing_source=OnMissing.DENY)
        )
        assert not outcome.allowed and "secret shop/db" in (outcome.denial or "")


class TestApiFailure:
    def test_deployment_fails_closed_and_nothing_half_done(self) -> None:
        sources = world()
        sources.fail_next("read", "secret", NS, "db")
        outcome, _ = run(deployment(), sources)
        assert not outcome.allowed and outcome.status_code == 503 and outcome.patch == []
        assert "secret shop/db" in (outcome.denial or "")

    def test_pod_fails_open_with_warning_and_event(self) -> None:
        sources = world()
        sources.fail_next("create", "configmap", NS, "app-config")
        outcome, _ = run(bare_pod(), sources)
        assert outcome.allowed and outcome.patch == [] and outcome.api_failure
        assert outcome.event and "configmap shop/" in outcome.warnings[0]

    def test_failure_settings_are_per_kind(self) -> None:
        policy = Policy(key=KEY, deployment_failure=OnFailure.ALLOW, pod_failure=OnFailure.DENY)
        sources = world()
        sources.fail_next("read", "secret", NS, "db")
        assert run(deployment(), sources, policy=policy)[0].allowed
        sources.fail_next("read", "secret", NS, "db")
        assert not run(bare_pod(), sources, policy=policy)[0].allowed


class TestUpdate:
    def created(self, sources: MemorySources) -> dict[str, Any]:
        return run(deployment(), sources)[1]

    def test_reapplying_the_manifest_keeps_the_old_pins_even_after_an_edit(self) -> None:
        sources = world()
        stored = self.created(sources)
        sources.add(cm("app-config", {"k": "v2"}))  # edited, not rolled out
        outcome, patched = run(deployment(), sources, old=stored)  # kubectl apply, same manifest
        assert patched["spec"]["template"] == stored["spec"]["template"]
        assert outcome.created == 0

    def test_metadata_only_change_keeps_pins(self) -> None:
        sources = world()
        stored = self.created(sources)
        sources.add(cm("app-config", {"k": "v2"}))
        changed = copy.deepcopy(stored)
        changed["metadata"]["labels"] = {"team": "shop"}
        outcome, patched = run(changed, sources, old=stored)
        assert outcome.patch == [] and patched["spec"]["template"] == stored["spec"]["template"]

    def test_a_controllers_write_with_null_fields_keeps_pins(self) -> None:
        # A Go controller (Argo Rollouts adding its revision annotation) writes the template
        # back through its structs, `creationTimestamp: null` and `resources: {}`: the same
        # Pods, not a template change. Nor is a re-apply of the manifest without them.
        sources = world()
        stored = self.created(sources)
        sources.add(cm("app-config", {"k": "v2"}))
        written = copy.deepcopy(stored)
        written["metadata"]["annotations"] = {"rollout.argoproj.io/revision": "1"}
        written["spec"]["template"]["metadata"]["creationTimestamp"] = None
        written["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
        outcome, patched = run(written, sources, old=stored)
        assert outcome.patch == [] and pins_of(patched) == pins_of(stored)
        _, reapplied = run(deployment(), sources, old=patched)
        assert template_names(reapplied) == template_names(stored)
        assert pins_of(reapplied) == pins_of(stored)

    def test_restart_after_an_edit_pins_the_edited_content(self) -> None:
        sources = world()
        stored = self.created(sources)
        edited = cm("app-config", {"k": "v2"})
        sources.add(edited)
        restarted = copy.deepcopy(stored)
        restarted["spec"]["template"]["metadata"]["annotations"][
            "kubectl.kubernetes.io/restartedAt"
        ] = "now"
        _, patched = run(restarted, sources, old=stored)
        assert template_names(patched) == (snap(edited), snap(DB), snap(edited))
        assert pins_of(patched) == {"configmap/app-config": snap(edited), "secret/db": snap(DB)}

    def test_new_image_from_a_manifest_pins_current_content(self) -> None:
        sources = world()
        stored = self.created(sources)
        edited = cm("app-config", {"k": "v2"})
        sources.add(edited)
        _, patched = run(deployment(image="web:2"), sources, old=stored)
        assert template_names(patched) == (snap(edited), snap(DB), snap(edited))

    def test_rollback_brings_back_the_old_snapshots(self) -> None:
        sources = world()
        first = self.created(sources)
        edited = cm("app-config", {"k": "v2"})
        sources.add(edited)
        second = copy.deepcopy(first)
        second["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        _, second = run(second, sources, old=first)
        assert template_names(second)[0] == snap(edited)
        # `rollout undo`: the first ReplicaSet's template written back.
        undo = copy.deepcopy(second)
        undo["spec"]["template"] = copy.deepcopy(first["spec"]["template"])
        outcome, patched = run(undo, sources, old=second)
        assert outcome.patch == []
        assert patched["spec"]["template"] == first["spec"]["template"]

    def test_rollback_to_a_revision_with_the_current_snapshots_ignores_a_pending_edit(
        self,
    ) -> None:
        # v1 and v2 both ran on the same config; then the config is edited, not rolled out,
        # and v2 is rolled back: v1 must come back with the config it ran with.
        sources = world()
        first = self.created(sources)
        first["metadata"]["uid"] = "deployment-uid"
        first["spec"]["selector"] = {"matchLabels": {"app": "web"}}
        second = copy.deepcopy(first)
        second["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        _, second = run(second, sources, old=first)
        assert template_names(second) == template_names(first)
        revision_one = copy.deepcopy(first["spec"]["template"])
        revision_one["metadata"]["labels"]["pod-template-hash"] = "abc"
        sources.replica_sets.append((NS, "deployment-uid", revision_one))
        sources.add(cm("app-config", {"k": "v2"}))
        undo = copy.deepcopy(second)
        undo["spec"]["template"] = copy.deepcopy(first["spec"]["template"])
        outcome, patched = run(undo, sources, old=second)
        assert outcome.patch == [] and patched["spec"]["template"] == first["spec"]["template"]
        # The same change not matching any ReplicaSet (a new template) does pick up the edit.
        sources.replica_sets.clear()
        _, repinned = run(undo, sources, old=second)
        assert template_names(repinned)[0] == snap(cm("app-config", {"k": "v2"}))

    def test_rollback_written_back_with_null_fields_is_still_recognised(self) -> None:
        # `kubectl argo rollouts undo` sends the ReplicaSet's template through a Go struct:
        # `creationTimestamp: null` and `resources: {}` beside what the ReplicaSet holds.
        sources = world()
        first = self.created(sources)
        first["metadata"]["uid"] = "deployment-uid"
        first["spec"]["selector"] = {"matchLabels": {"app": "web"}}
        second = copy.deepcopy(first)
        second["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        _, second = run(second, sources, old=first)
        revision_one = copy.deepcopy(first["spec"]["template"])
        revision_one["metadata"]["labels"]["pod-template-hash"] = "abc"
        sources.replica_sets.append((NS, "deployment-uid", revision_one))
        sources.add(cm("app-config", {"k": "v2"}))
        undo = copy.deepcopy(second)
        undo["spec"]["template"] = copy.deepcopy(first["spec"]["template"])
        undo["spec"]["template"]["metadata"]["creationTimestamp"] = None
        undo["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
        outcome, _ = run(undo, sources, old=second)
        assert outcome.patch == []

    def test_a_pin_is_never_re_pinned_by_reinvocation(self) -> None:
        sources = world()
        stored = self.created(sources)
        edited = cm("app-config", {"k": "v2"})
        sources.add(edited)
        changed = deployment(image="web:2")
        _, first_pass = run(changed, sources, old=stored)
        sources.add(cm("app-config", {"k": "v3"}))  # edited between two invocations
        outcome, _ = run(first_pass, sources, old=stored)
        assert outcome.patch == []

    def test_template_unchanged_on_an_unpinned_old_deployment_stays_unpinned(self) -> None:
        # Created before the namespace opted in: a re-apply must not roll it out.
        old = deployment()
        outcome, _ = run(deployment(), world(), old=old)
        assert outcome.patch == []


class TestPods:
    def test_bare_pod_is_pinned(self) -> None:
        _, patched = run(bare_pod(), world())
        assert template_names(patched) == (snap(CONFIG), snap(DB), snap(CONFIG))
        assert pins_of(patched) == {"configmap/app-config": snap(CONFIG), "secret/db": snap(DB)}

    def test_pod_from_a_pinned_template_is_left_alone_without_reads(self) -> None:
        sources = world()
        _, stored = run(deployment(), sources)
        template = stored["spec"]["template"]
        owner = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-1",
            "uid": "u",
            "controller": True,
        }
        pod = bare_pod(
            template["spec"],
            annotations=template["metadata"]["annotations"],
            ownerReferences=[owner],
        )
        reads = len(sources.reads)
        outcome, _ = run(pod, sources)
        assert outcome.result == "unchanged" and outcome.patch == [] and len(sources.reads) == reads

    def test_controller_owned_pod_with_unpinned_references_is_admitted_unchanged(self) -> None:
        owner = {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "name": "db",
            "uid": "u",
            "controller": True,
        }
        outcome, _ = run(bare_pod(ownerReferences=[owner]), world())
        assert outcome.patch == [] and outcome.result == "skipped"
        assert outcome.unpinned_owner == "Widget"  # a kind outside the table: counted

    def test_a_pod_of_a_kind_in_the_table_is_not_counted_as_unpinned(self) -> None:
        # Its owner's template was left live on purpose (opted out, or made before the
        # namespace opted in): not a gap in the table.
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "w", "controller": True}
        outcome, _ = run(bare_pod(ownerReferences=[owner]), world())
        assert outcome.result == "skipped" and outcome.unpinned_owner is None

    def test_pod_updates_are_not_handled(self) -> None:
        outcome = pin(
            PinRequest(POD, "UPDATE", NS, bare_pod(), bare_pod()), world(), Policy(key=KEY)
        )
        assert outcome.result == "skipped"


source_names = st.sampled_from(["app-config", "db", "features", "missing"])


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    def ref(kind: str) -> dict[str, Any]:
        return {"name": draw(source_names), "optional": draw(st.booleans())}

    env = [
        {
            "name": "E",
            "valueFrom": {
                draw(st.sampled_from(["configMapKeyRef", "secretKeyRef"])): {**ref(""), "key": "k"}
            },
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    env_from = [
        {draw(st.sampled_from(["configMapRef", "secretRef"])): ref("")}
        for _ in range(draw(st.integers(0, 2)))
    ]
    volumes = [{"name": f"v{i}", "configMap": ref("")} for i in range(draw(st.integers(0, 2)))]
    return {"containers": [{"name": "c", "env": env, "envFrom": env_from}], "volumes": volumes}


PROPERTY_SOURCES = (
    cm("app-config", {"k": "v"}),
    cm("db", {"k": "v"}),
    secret("db", {"pw": "eA=="}),
    secret("features", {"x": "eQ=="}),
    cm("features", {"a": "b"}),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(specs(), st.booleans(), st.booleans())
def test_patch_applies_and_a_second_review_yields_nothing(
    spec: dict[str, Any], as_pod: bool, has_annotations: bool
) -> None:
    obj = bare_pod(spec) if as_pod else deployment(spec)
    if has_annotations:
        meta = obj["metadata"] if as_pod else obj["spec"]["template"]["metadata"]
        meta["annotations"] = {"a": "b"}
    sources = MemorySources(OPTED_IN, PROPERTY_SOURCES)
    outcome, patched = run(obj, sources)  # raises if the patch does not apply
    again, _ = run(patched, sources)
    assert again.patch == []
    if outcome.patch:
        created = {s["metadata"]["name"] for s in sources.created}
        for op in outcome.patch:
            if op["op"] == "replace":
                assert op["value"] in created  # never a name that was not created
