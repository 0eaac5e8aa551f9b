"""What the pinning sequence needs from the cluster (or from manifest files, offline)."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.domain.references import SourceKind
from app.domain.workloads import Rollbacks


@dataclass
class SourceUnavailableError(Exception):
    """The API could not be asked (timeout, 5xx, 403...) or a snapshot name is taken.

    `detail` is written by the caller and never carries object content."""

    action: str  # "read", "create snapshot of"
    kind: SourceKind | str
    namespace: str
    name: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"could not {self.action} {self.kind} {where}: {self.detail}"


class Sources(Protocol):
    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """The namespace's labels, None when it does not exist."""

    def read(self, namespace: str, kind: SourceKind, name: str) -> Mapping[str, Any] | None:
        """The current object, read-your-writes (no stale cache); None when absent."""

    def create_snapshot(self, snapshot: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Create-or-get: None when created, else the object that already holds the name
        (whether it may be reused is the caller's decision, made with the key)."""

    def revision_templates(
        self, namespace: str, kind: Rollbacks, owner_uid: str, selector: str
    ) -> list[Mapping[str, Any]]:
        """The pod templates of the revisions (ReplicaSets or ControllerRevisions, as `kind`
        says) that the workload `owner_uid` controls; `selector` (the workload's, as a
        `labelSelector` query) narrows the listing."""
