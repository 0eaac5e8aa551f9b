"""The kinds configpin pins: one table, read by the pinning sequence, the review parser,
`configpin render` and (through a test that compares them) the chart's webhook rules.

A new kind is a row, not a branch in the pinner: where its pod template sits, on which
operations it is pinned, and how a rollback to one of its revisions is recognised.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.domain.pointer import resolve

CREATE_ONLY = ("CREATE",)
CREATE_AND_UPDATE = ("CREATE", "UPDATE")


class Rollbacks(StrEnum):
    """Where a workload keeps the templates it can be rolled back to."""

    NONE = "none"
    # `kubectl rollout undo deployment/x` writes a ReplicaSet's template back (Argo Rollouts'
    # undo does the same with the Rollout's ReplicaSets).
    REPLICA_SETS = "replicasets"
    # `kubectl rollout undo statefulset/x` and `daemonset/x` apply a ControllerRevision.
    CONTROLLER_REVISIONS = "controllerrevisions"


@dataclass(frozen=True)
class WorkloadKind:
    group: str
    version: str
    kind: str
    resource: str  # the plural in the webhook's rules
    # JSON pointer to the pod template ({metadata, spec}); "" for a Pod: the object itself.
    template: str
    operations: tuple[str, ...]
    rollbacks: Rollbacks = Rollbacks.NONE
    # The label the controller adds to the templates of its revisions, absent from the
    # workload's own template (`pod-template-hash`).
    revision_hash_label: str | None = None
    # Pinned only without a controlling owner: a Pod or ReplicaSet made by a controller gets
    # what its owner's (pinned) template gave it, and mutating it would fight the controller.
    unless_controlled: bool = False
    # A field whose presence means the pod template lives in another object (a Rollout's
    # `workloadRef`): such an object is left alone, with a warning.
    template_elsewhere: str | None = None
    # Pinned at creation only, because the template cannot change after (a Job's). UPDATEs
    # are still reviewed, to give back the pins when the template is the same: a re-apply
    # of the manifest sends the sources' names, which the API server would refuse as a
    # change to an immutable field.
    template_immutable: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def is_pod(self) -> bool:
        return self.template == ""

    @property
    def spec_pointer(self) -> str:
        return f"{self.template}/spec"

    @property
    def metadata_pointer(self) -> str:
        return f"{self.template}/metadata"


POD = WorkloadKind("", "v1", "Pod", "pods", "", CREATE_ONLY, unless_controlled=True)
DEPLOYMENT = WorkloadKind(
    "apps",
    "v1",
    "Deployment",
    "deployments",
    "/spec/template",
    CREATE_AND_UPDATE,
    Rollbacks.REPLICA_SETS,
    revision_hash_label="pod-template-hash",
)

STATEFUL_SET = WorkloadKind(
    "apps",
    "v1",
    "StatefulSet",
    "statefulsets",
    "/spec/template",
    CREATE_AND_UPDATE,
    Rollbacks.CONTROLLER_REVISIONS,
)
DAEMON_SET = WorkloadKind(
    "apps",
    "v1",
    "DaemonSet",
    "daemonsets",
    "/spec/template",
    CREATE_AND_UPDATE,
    Rollbacks.CONTROLLER_REVISIONS,
)
# A Job's template is immutable: pinned once, every Pod and retry of the Job sees the same
# config. A CronJob's Jobs are pinned at their own creation; the CronJob stays as written.
JOB = WorkloadKind(
    "batch", "v1", "Job", "jobs", "/spec/template", CREATE_AND_UPDATE, template_immutable=True
)
# A ReplicaSet of a Deployment or a Rollout is never mutated: the owner's controller compares
# templates, and a mutated ReplicaSet makes it create ReplicaSets without end
# (kubernetes/kubernetes#57167). The chart's matchConditions keep those from the webhook.
REPLICA_SET = WorkloadKind(
    "apps",
    "v1",
    "ReplicaSet",
    "replicasets",
    "/spec/template",
    CREATE_AND_UPDATE,
    unless_controlled=True,
)

BUILT_IN: tuple[WorkloadKind, ...] = (
    POD,
    DEPLOYMENT,
    STATEFUL_SET,
    DAEMON_SET,
    JOB,
    REPLICA_SET,
)

# Custom kinds come from the settings; Argo Rollouts' Rollout is listed by default. Its
# undo writes a ReplicaSet's template back, as `kubectl rollout undo deployment` does.
ROLLOUT = WorkloadKind(
    "argoproj.io",
    "v1alpha1",
    "Rollout",
    "rollouts",
    "/spec/template",
    CREATE_AND_UPDATE,
    Rollbacks.REPLICA_SETS,
    revision_hash_label="rollouts-pod-template-hash",
    template_elsewhere="/spec/workloadRef",
)
DEFAULT_CUSTOM: tuple[WorkloadKind, ...] = (ROLLOUT,)


class DuplicateKindError(ValueError):
    pass


class Workloads:
    """The table: built-in rows followed by the custom kinds of the settings."""

    def __init__(self, custom: Iterable[WorkloadKind] = DEFAULT_CUSTOM) -> None:
        self._rows: dict[tuple[str, str], WorkloadKind] = {}
        for row in (*BUILT_IN, *custom):
            key = (row.group, row.kind)
            if key in self._rows:
                raise DuplicateKindError(f"{row.kind}.{row.group or 'core'} is listed twice")
            self._rows[key] = row

    def __iter__(self) -> Iterator[WorkloadKind]:
        return iter(self._rows.values())

    def find(self, group: str, kind: str) -> WorkloadKind | None:
        return self._rows.get((group, kind))

    def find_object(self, obj: Mapping[str, Any]) -> WorkloadKind | None:
        """The row of an object (a manifest, or an ownerReference) by apiVersion and kind."""
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return None
        group = api_version.rpartition("/")[0]
        return self.find(group, kind)


def template_of(kind: WorkloadKind, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template of `obj` where the table says it sits (a Pod is its own); empty when
    it is missing or not an object (webhooks run before validation)."""
    template = resolve(obj, kind.template)
    return template if isinstance(template, Mapping) else {}


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The controlling ownerReference of `obj`, if any."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    for owner in owners:
        if isinstance(owner, Mapping) and owner.get("controller") is True:
            return owner
    return None
