"""The in-memory Sources answer as kube-apiserver (behind ClusterSources) does, where the
pinning sequence relies on it."""

import base64
import copy

import pytest

from app.admission.sources import SourceUnavailableError
from app.domain.snapshots import build_snapshot
from tests.fakes import MemorySources, config_map, secret

KEY = b"memory-sources-key-0123"


def test_a_secret_reads_back_with_string_data_merged_into_data() -> None:
    written = secret("ns", "db", {"a": "eA=="})
    written["stringData"] = {"b": "plain"}
    sources = MemorySources(objects=[written])
    stored = sources.read("ns", "secret", "db")
    assert stored is not None and "stringData" not in stored
    assert stored["data"] == {"a": "eA==", "b": base64.b64encode(b"plain").decode()}


def test_an_immutable_object_keeps_its_content() -> None:
    sources = MemorySources(objects=[config_map("ns", "c", {"k": "v"}, labels={"x": "1"})])
    sources.add(config_map("ns", "c", {"k": "v2"}))  # mutable: replaced
    frozen = {**config_map("ns", "c", {"k": "v2"}), "immutable": True}
    sources.add(frozen)
    sources.add({**frozen, "metadata": {**frozen["metadata"], "labels": {"y": "2"}}})
    with pytest.raises(ValueError, match="immutable"):
        sources.add({**config_map("ns", "c", {"k": "v3"}), "immutable": True})


def test_an_invalid_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid object name"):
        MemorySources(objects=[config_map("ns", "Bad_Name", {})])
    snapshot = build_snapshot(KEY, "configmap", config_map("ns", "c", {"k": "v"}))
    snapshot["metadata"]["name"] = "-" + snapshot["metadata"]["name"]
    with pytest.raises(SourceUnavailableError, match="422"):
        MemorySources().create_snapshot(snapshot)


def test_create_or_get_hands_back_what_holds_the_name() -> None:
    source = config_map("ns", "c", {"k": "v"})
    snapshot = build_snapshot(KEY, "configmap", source)
    sources = MemorySources()
    assert sources.create_snapshot(snapshot) is None
    assert sources.create_snapshot(snapshot) == snapshot
    # Whatever holds the name is handed back: the pinning sequence judges it with the key.
    foreign = copy.deepcopy(snapshot)
    del foreign["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    assert MemorySources(objects=[foreign]).create_snapshot(snapshot) == foreign
