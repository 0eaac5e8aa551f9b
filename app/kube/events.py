"""Events about the objects configpin could not pin, and about snapshots' lifecycle."""

import datetime
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from app.kube.api import ApiError, ApiUnreachableError, RawApi

log = logging.getLogger("configpin.events")


class ClusterEvents:
    def __init__(self, api: RawApi) -> None:
        self._api = api

    def warn(self, namespace: str, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.record(namespace, obj, reason, message, "Warning")

    def record(
        self, namespace: str, obj: Mapping[str, Any], reason: str, message: str, event_type: str
    ) -> None:
        metadata = obj.get("metadata") or {}
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": "configpin-", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "namespace": namespace,
                # A Pod being created may have only a generateName yet.
                "name": metadata.get("name") or metadata.get("generateName", ""),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": "configpin"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._api.create(f"/api/v1/namespaces/{quote(namespace, safe='')}/events", event)
        except (ApiError, ApiUnreachableError) as error:
            log.warning("could not record the %s event in %s: %s", reason, namespace, error)
