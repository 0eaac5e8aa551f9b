"""Reads and writes behind `configpin history`, `diff` and `unpin`, as the user running them."""

import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.config.kube_config import (
    KUBE_CONFIG_DEFAULT_LOCATION,
    KubeConfigLoader,
    KubeConfigMerger,
)

from app.domain.pinning import snapshot_sources
from app.domain.references import SourceKind
from app.domain.selectors import label_selector
from app.domain.versions import Revision, Snapshot, resource_name, revisions_of, snapshot_of
from app.domain.workloads import Rollbacks, WorkloadKind
from app.kube.api import ApiError, ApiUnreachableError, RawApi
from app.kube.snapshots import release_snapshot, snapshot_path


class VersionsError(Exception):
    """One line for the user: what was not found, not allowed or not reachable."""


def connect_as_user(kubeconfig: str | None, context: str | None) -> tuple[client.ApiClient, str]:
    """A client as kubectl would make it (`--kubeconfig`, else $KUBECONFIG, possibly several
    files, else ~/.kube/config; `--context`, else the current one) and that context's
    namespace. Only the chosen context is resolved, as kubectl does."""
    configuration = client.Configuration()
    try:
        merged = KubeConfigMerger(  # type: ignore[no-untyped-call]
            kubeconfig or os.environ.get("KUBECONFIG") or KUBE_CONFIG_DEFAULT_LOCATION
        )
        if merged.config is None:
            raise config.ConfigException("no configuration found")
        loader = KubeConfigLoader(  # type: ignore[no-untyped-call]
            config_dict=merged.config, active_context=context
        )
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        namespace = loader.current_context["context"].get("namespace") or "default"
    except (config.ConfigException, OSError) as error:
        raise VersionsError(f"cannot load the kubeconfig: {error}") from None
    return client.ApiClient(configuration), namespace


class ClusterVersions:
    def __init__(self, api: RawApi) -> None:
        self._api = api

    def workload(self, kind: WorkloadKind, namespace: str, name: str) -> dict[str, Any]:
        found = self._read(
            f"{_collection(kind.api_version, kind.resource, namespace)}/{quote(name, safe='')}",
            f"{resource_name(kind)} {name!r} in namespace {namespace!r}",
        )
        if found is None:
            raise VersionsError(
                f"{resource_name(kind)} {name!r} not found in namespace {namespace!r}"
            )
        return found

    def revisions(self, kind: WorkloadKind, workload: Mapping[str, Any]) -> list[Revision]:
        namespace = workload["metadata"]["namespace"]
        # matchLabels and matchExpressions alike; revisions_of keeps the workload's own.
        selector = label_selector((workload.get("spec") or {}).get("selector")) or ""
        plural = (
            "replicasets" if kind.rollbacks is Rollbacks.REPLICA_SETS else "controllerrevisions"
        )
        path = (
            f"{_collection('apps/v1', plural, namespace)}?labelSelector={quote(selector, safe='')}"
        )
        listed = self._read(path, f"{plural} in namespace {namespace!r}") or {}
        return revisions_of(kind, workload, listed.get("items") or [])

    def snapshots(
        self, namespace: str, revisions: Iterable[Revision]
    ) -> dict[tuple[SourceKind, str], Snapshot]:
        """Every snapshot the revisions pin, read once each (None content if gone)."""
        found: dict[tuple[SourceKind, str], Snapshot] = {}
        for kind, name in snapshot_sources(*(revision.pins for revision in revisions)):
            found[(kind, name)] = snapshot_of(
                name,
                self._read(
                    snapshot_path(namespace, kind, name),
                    f"{kind} {name!r} in namespace {namespace!r}",
                ),
            )
        return found

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        found = self._read(
            f"/api/v1/namespaces/{quote(namespace, safe='')}", f"namespace {namespace!r}"
        )
        if found is None:
            raise VersionsError(f"namespace {namespace!r} not found")
        return dict((found.get("metadata") or {}).get("labels") or {})

    def workloads(
        self, namespace: str, kinds: Iterable[WorkloadKind]
    ) -> list[tuple[WorkloadKind, dict[str, Any]]]:
        """Every workload of these kinds in the namespace; kinds the cluster does not serve
        (Argo Rollouts not installed) are skipped."""
        found: list[tuple[WorkloadKind, dict[str, Any]]] = []
        for kind in kinds:
            listed = self._read(
                _collection(kind.api_version, kind.resource, namespace),
                f"{kind.resource} in namespace {namespace!r}",
            )
            for item in (listed or {}).get("items") or []:
                found.append((kind, item))
        return found

    def replace_template(
        self, kind: WorkloadKind, workload: Mapping[str, Any], template: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Write `template` into the workload, only if nobody changed it since it was read."""
        metadata = workload["metadata"]
        path = (
            f"{_collection(kind.api_version, kind.resource, metadata['namespace'])}"
            f"/{quote(metadata['name'], safe='')}"
        )
        operations = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": metadata["resourceVersion"],
            },
            {"op": "replace", "path": kind.template, "value": template},
        ]
        what = f"{resource_name(kind)} {metadata['name']!r} in namespace {metadata['namespace']!r}"
        try:
            return self._api.request(
                "PATCH", path, body=operations, content_type="application/json-patch+json"
            )
        except ApiError as error:
            if error.status in (409, 422):
                raise VersionsError(f"{what} changed while unpinning: run it again") from None
            raise VersionsError(_refusal(error, "update", what)) from None
        except ApiUnreachableError as error:
            raise VersionsError(f"cannot reach the API server: {error}") from None

    def release(self, namespace: str, snapshots: Iterable[tuple[SourceKind, str]]) -> list[str]:
        """Remove configpin's in-use finalizer from these snapshots; `kind/name` of those it
        was removed from (not there, or the snapshot gone: nothing to do)."""
        released = []
        for kind, name in snapshots:
            try:
                if release_snapshot(self._api, namespace, kind, name):
                    released.append(f"{kind}/{name}")
            except ApiError as error:
                what = f"{kind} {name!r} in namespace {namespace!r}"
                raise VersionsError(_refusal(error, "release", what)) from None
            except ApiUnreachableError as error:
                raise VersionsError(f"cannot reach the API server: {error}") from None
        return released

    def _read(self, path: str, what: str) -> dict[str, Any] | None:
        try:
            return self._api.get(path)
        except ApiError as error:
            raise VersionsError(_refusal(error, "read", what)) from None
        except ApiUnreachableError as error:
            raise VersionsError(f"cannot reach the API server: {error}") from None


def _refusal(error: ApiError, verb: str, what: str) -> str:
    if error.status == 403:
        return f"forbidden: you may not {verb} {what}"
    if error.status == 401:
        return "unauthorized: the API server did not accept your credentials"
    return f"cannot {verb} {what}: {error}"


def _collection(api_version: str, plural: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{quote(namespace, safe='')}/{plural}"
