"""The outcome of each path through the pinning sequence (what metrics count and the
response carries), and the lookups it makes or spares."""

import copy
from typing import Any

import pytest

from app.admission.pinner import OnFailure, OnMissing, PinRequest, Policy, pin
from app.domain import labels
from app.domain.workloads import DEPLOYMENT, POD
from tests.fakes import MemorySources
from tests.test_pinner import (
    CONFIG,
    DB,
    KEY,
    NS,
    bare_pod,
    cm,
    deployment,
    pins_of,
    run,
    snap,
    template_names,
    world,
)

OPTED_IN = {NS: {labels.INJECT: labels.INJECT_ENABLED}}


class TestSkipped:
    @pytest.mark.parametrize(
        ("kind", "operation"), [(POD, "UPDATE"), (DEPLOYMENT, "DELETE"), (POD, "CONNECT")]
    )
    def test_an_operation_not_handled(self, kind: Any, operation: str) -> None:
        obj = bare_pod() if kind == POD else deployment()
        outcome = pin(PinRequest(kind, operation, NS, obj, obj), world(), Policy(key=KEY))
        assert outcome.result == "skipped" and outcome.allowed and outcome.patch == []

    def test_a_namespace_not_opted_in_an_unknown_one_and_an_opt_out(self) -> None:
        sources = world()
        opted_out = deployment(annotations={labels.INJECT: "false"})
        assert run(deployment(), sources, namespace="other")[0].result == "skipped"
        assert run(deployment(), sources, namespace="unknown")[0].result == "skipped"
        assert run(opted_out, sources)[0].result == "skipped"
        assert sources.reads == []

    def test_without_the_namespace_check_an_unlabelled_namespace_is_pinned(self) -> None:
        sources = MemorySources({}, [cm("app-config", {"k": "v"}), *world().objects.values()])
        policy = Policy(key=KEY, check_namespace_label=False)
        assert run(deployment(), sources, policy=policy)[0].result == "pinned"


class TestMissingSources:
    def test_every_missing_source_is_named_once_in_reference_order(self) -> None:
        spec = {
            "containers": [
                {
                    "name": "web",
                    "envFrom": [{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "a"}}],
                }
            ],
            "volumes": [{"name": "v", "secret": {"secretName": "db"}}],
        }
        outcome, _ = run(deployment(spec), world(CONFIG))
        assert outcome.result == "missing-source" and outcome.allowed
        assert outcome.missing == (f"secret {NS}/db", f"configmap {NS}/a")
        assert outcome.warnings == (
            "configpin: required source not found, left unpinned: "
            f"secret {NS}/db, configmap {NS}/a",
        )

    def test_a_denial_names_them_and_is_counted_as_denied(self) -> None:
        policy = Policy(key=KEY, missing_source=OnMissing.DENY)
        outcome, _ = run(deployment(), world(CONFIG), policy=policy)
        assert outcome.result == "denied" and outcome.allowed is False
        assert outcome.missing == (f"secret {NS}/db",)
        assert outcome.denial == f"configpin: required source not found: secret {NS}/db"
        assert outcome.status_code == 403 and not outcome.api_failure


class TestApiFailureOutcomes:
    def test_deny(self) -> None:
        sources = world()
        sources.fail_next("read", "secret", NS, "db")
        outcome, _ = run(deployment(), sources)
        assert outcome.result == "denied" and outcome.allowed is False
        assert outcome.api_failure and outcome.status_code == 503
        assert outcome.denial == (
            f"configpin could not read secret {NS}/db: simulated API failure; "
            "nothing was changed, retry the request"
        )

    def test_allow(self) -> None:
        sources = world()
        sources.fail_next("read", "secret", NS, "db")
        policy = Policy(key=KEY, deployment_failure=OnFailure.ALLOW)
        outcome, _ = run(deployment(), sources, policy=policy)
        message = (
            "configpin: Deployment admitted unpinned, "
            f"could not read secret {NS}/db: simulated API failure"
        )
        assert outcome.result == "failed-open" and outcome.allowed and outcome.api_failure
        assert outcome.warnings == (message,) and outcome.event == message


class TestUpdateOutcomes:
    def test_a_re_apply_that_gets_the_old_pins_back_is_pinned_a_metadata_change_unchanged(
        self,
    ) -> None:
        sources = world()
        _, stored = run(deployment(), sources)
        reapplied, _ = run(deployment(), sources, old=stored)
        assert reapplied.result == "pinned" and reapplied.patch
        relabelled = copy.deepcopy(stored)
        relabelled["metadata"]["labels"] = {"team": "shop"}
        assert run(relabelled, sources, old=stored)[0].result == "unchanged"

    def test_an_unpinned_deployment_with_other_template_annotations_stays_unpinned(self) -> None:
        # Created before the namespace opted in; its template carries annotations of its own.
        old = deployment(annotations={"prometheus.io/scrape": "true"})
        outcome, patched = run(copy.deepcopy(old), world(), old=old)
        assert outcome.result == "unchanged" and patched == old

    def test_snapshot_names_written_into_a_changed_manifest_still_roll_out_current_config(
        self,
    ) -> None:
        # The pinned names copied into a manifest without the pins annotation: a template
        # change still counts them as their sources, as pins carried from the old template.
        sources = world()
        _, stored = run(deployment(), sources)
        edited = cm("app-config", {"k": "v2"})
        sources.add(edited)
        manifest = copy.deepcopy(stored)
        del manifest["spec"]["template"]["metadata"]["annotations"]
        manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        _, patched = run(manifest, sources, old=stored)
        assert template_names(patched) == (snap(edited), snap(DB), snap(edited))
        assert pins_of(patched) == {"configmap/app-config": snap(edited), "secret/db": snap(DB)}


class TestRollbackLookups:
    def rolled_out(self, sources: MemorySources) -> dict[str, Any]:
        _, stored = run(deployment(), sources)
        stored["metadata"]["uid"] = "uid-1"
        stored["spec"]["selector"] = {"matchLabels": {"app": "web"}}
        return stored

    def test_no_lookup_when_no_carried_pin_would_move(self) -> None:
        sources = world()
        stored = self.rolled_out(sources)
        changed = copy.deepcopy(stored)
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        outcome, _ = run(changed, sources, old=stored)
        assert outcome.result == "unchanged" and sources.revision_lookups == []

    def test_one_lookup_with_the_deployment_uid_and_selector_when_a_pin_would_move(
        self,
    ) -> None:
        sources = world()
        stored = self.rolled_out(sources)
        sources.add(cm("app-config", {"k": "v2"}))
        changed = copy.deepcopy(stored)
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        outcome, _ = run(changed, sources, old=stored)
        assert outcome.result == "pinned"
        assert sources.revision_lookups == [(NS, "uid-1", "app=web")]

    def test_a_replica_set_without_pod_template_hash_is_compared_too(self) -> None:
        # Adopted by the Deployment rather than made by it: no hash label to set aside.
        sources = world()
        stored = self.rolled_out(sources)
        second = copy.deepcopy(stored)
        second["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        second = run(second, sources, old=stored)[1]  # both revisions on the same config
        sources.replica_sets.append((NS, "uid-1", copy.deepcopy(stored["spec"]["template"])))
        sources.add(cm("app-config", {"k": "v2"}))
        undo = copy.deepcopy(second)
        undo["spec"]["template"] = copy.deepcopy(stored["spec"]["template"])
        outcome, patched = run(undo, sources, old=second)
        assert outcome.result == "unchanged" and len(sources.revision_lookups) == 1
        assert template_names(patched)[0] == snap(CONFIG)
