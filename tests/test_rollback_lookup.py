"""`rollout undo` recognition: a template is a revision only when it is the template of a
ReplicaSet the Deployment controls, i.e. one its selector matches and whose controller
ownerReference is the Deployment (what the Deployment controller itself claims)."""

import copy
import itertools
from typing import Any

import pytest

from app.admission.pinner import Policy
from tests.fakes import MemorySources
from tests.test_pinner import KEY, NS, cm, deployment, run, snap, template_names, world

UID = "deployment-uid"
SELECTOR = {"app": "web"}
EDITED = cm("app-config", {"k": "v2"})


def replica_set(
    template: dict[str, Any],
    owner_uid: str = UID,
    controller: bool = True,
    rs_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ReplicaSet as the Deployment controller makes it: the template with
    `pod-template-hash` added, labelled like its pods."""
    pod_template = copy.deepcopy(template)
    pod_template["metadata"]["labels"]["pod-template-hash"] = "5d8f7c"
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-5d8f7c",
            "namespace": NS,
            "labels": pod_template["metadata"]["labels"] if rs_labels is None else rs_labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "web",
                    "uid": owner_uid,
                    "controller": controller,
                }
            ],
        },
        "spec": {"replicas": 0, "template": pod_template},
    }


def undo_of_revision_one(
    sources: MemorySources,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(revision one's template, the Deployment at revision two, the undo request's object):
    both revisions ran on the same config, which has since been edited, not rolled out."""
    first = run(deployment(), sources)[1]
    first["metadata"]["uid"] = UID
    first["spec"]["selector"] = {"matchLabels": SELECTOR}
    second = copy.deepcopy(first)
    second["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    _, second = run(second, sources, old=first)
    sources.add(EDITED)
    undo = copy.deepcopy(second)
    undo["spec"]["template"] = copy.deepcopy(first["spec"]["template"])
    return first["spec"]["template"], second, undo


def test_a_controlled_replica_set_matching_the_selector_is_a_rollback() -> None:
    sources = world()
    revision_one, second, undo = undo_of_revision_one(sources)
    sources.add(replica_set(revision_one))
    outcome, patched = run(undo, sources, old=second)
    assert outcome.result == "unchanged" and outcome.patch == []
    assert patched["spec"]["template"] == revision_one


@pytest.mark.parametrize(
    "not_its_own",
    [
        {"rs_labels": {"app": "web-canary"}},  # relabelled out of the selector: released
        {"controller": False},
        {"owner_uid": "another-deployment"},
    ],
    ids=["selector-does-not-match", "not-the-controller", "another-owner"],
)
def test_a_replica_set_the_deployment_does_not_control_is_no_rollback(
    not_its_own: dict[str, Any],
) -> None:
    sources = world()
    revision_one, second, undo = undo_of_revision_one(sources)
    sources.add(replica_set(revision_one, **not_its_own))
    outcome, patched = run(undo, sources, old=second)
    assert outcome.result == "pinned"
    assert template_names(patched)[0] == snap(EDITED)


def test_a_lookup_past_the_review_deadline_is_not_started_and_says_what_it_was() -> None:
    sources = world()
    revision_one, second, undo = undo_of_revision_one(sources)
    sources.add(replica_set(revision_one))
    # Every call to the clock is one second: the namespace, four reads, then the lookup.
    ticks = itertools.count()
    policy = Policy(key=KEY, review_seconds=5.5, clock=lambda: float(next(ticks)))
    outcome, _ = run(undo, sources, old=second, policy=policy)
    assert (outcome.allowed, outcome.status_code) == (False, 503)
    assert outcome.denial == (
        f"configpin could not list replicasets of workload {NS}/{UID}: the review's deadline "
        "of 5.5s passed; nothing was changed, retry the request"
    )
