"""Naming, snapshot objects, scope rules and the patch builder: pure logic."""

import json
from typing import Any

import jsonpatch
import pytest

from app.domain import labels
from app.domain.naming import (
    DIGEST_LENGTH,
    MAX_NAME_LENGTH,
    InvalidKeyError,
    check_key,
    content_digest,
    snapshot_name,
)
from app.domain.pinning import encode_pins, parse_pins, patch_operations, unpinned_template
from app.domain.references import find_references
from app.domain.scope import (
    live_references,
    namespace_never_touched,
    namespace_opted_in,
    opted_out,
    source_stays_live,
)
from app.domain.snapshots import build_snapshot, is_snapshot

KEY = b"k" * 32
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def configmap(name: str = "app-config", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": "u-1",
            "resourceVersion": "42",
            "labels": {"grafana_dashboard": "1"},
            "annotations": {"team": "shop"},
        },
        "data": {"a": "1"},
        **extra,
    }


class TestNaming:
    def test_digest_is_deterministic_keyed_and_content_bound(self) -> None:
        source = configmap()
        digest = content_digest(KEY, "configmap", source)
        assert digest == content_digest(KEY, "configmap", configmap())
        assert len(digest) == DIGEST_LENGTH and digest.isalnum() and digest.islower()
        assert digest != content_digest(b"x" * 32, "configmap", source)
        assert digest != content_digest(KEY, "configmap", configmap(data={"a": "2"}))
        assert digest != content_digest(KEY, "secret", source)

    def test_digest_ignores_labels_annotations_and_versions_but_not_type_or_binary_data(
        self,
    ) -> None:
        relabelled = configmap()
        relabelled["metadata"] |= {"labels": {}, "annotations": {}, "uid": "u-2"}
        relabelled["metadata"]["resourceVersion"] = "43"
        assert content_digest(KEY, "configmap", relabelled) == content_digest(
            KEY, "configmap", configmap()
        )
        secret = {"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}}
        tls = {**secret, "type": "kubernetes.io/tls"}
        assert content_digest(KEY, "secret", secret) != content_digest(KEY, "secret", tls)
        binary = configmap(binaryData={"b": "AA=="})
        assert content_digest(KEY, "configmap", binary) != content_digest(
            KEY, "configmap", configmap()
        )

    def test_the_same_content_in_two_sources_gives_unrelated_digests(self) -> None:
        # dev/db and prod/db-prod holding the same password: equal digests would let anyone
        # who can create a Secret test a guess against another source's name.
        dev = {"metadata": {"name": "db", "namespace": "dev"}, "data": {"pw": "MQ=="}}
        prod = {"metadata": {"name": "db-prod", "namespace": "prod"}, "data": {"pw": "MQ=="}}
        other_namespace = {**dev, "metadata": {"name": "db", "namespace": "prod"}}
        digests = {content_digest(KEY, "secret", s) for s in (dev, prod, other_namespace)}
        assert len(digests) == 3

    def test_empty_and_absent_data_are_the_same_content(self) -> None:
        assert content_digest(KEY, "configmap", {"data": {}}) == content_digest(
            KEY, "configmap", {}
        )

    def test_short_keys_are_refused(self) -> None:
        with pytest.raises(InvalidKeyError, match="at least 16 bytes"):
            check_key(b"short")

    def test_names_fit_in_253_characters_and_stay_dns_subdomains(self) -> None:
        import re

        digest = "bcdfghjklm"
        assert snapshot_name("app-config", digest) == "app-config-bcdfghjklm"
        for source in ("a" * 300, "a" * 241 + "." + "b" * 20, "a" * 241 + "-" * 30):
            name = snapshot_name(source, digest)
            assert len(name) <= MAX_NAME_LENGTH
            assert name.endswith("-" + digest)
            assert re.match(DNS_SUBDOMAIN, name), name
        exact = "a" * (MAX_NAME_LENGTH - DIGEST_LENGTH - 1)
        assert snapshot_name(exact, digest) == f"{exact}-{digest}"


class TestSnapshots:
    def test_copies_content_exactly_and_only_configpin_metadata(self) -> None:
        source = configmap(binaryData={"b": "AA=="})
        snapshot = build_snapshot(KEY, "configmap", source)
        digest = content_digest(KEY, "configmap", source)
        assert snapshot["metadata"] == {
            "name": f"app-config-{digest}",
            "namespace": "shop",
            "labels": {
                labels.MANAGED_BY: "configpin",
                labels.DIGEST: digest,
                labels.SOURCE: "app-config",
            },
            "annotations": {
                labels.SOURCE_NAME: "app-config",
                labels.SOURCE_UID: "u-1",
                labels.SOURCE_RESOURCE_VERSION: "42",
            },
            # Released by the lifecycle controller once nothing may run with it.
            "finalizers": ["configpin.io/in-use"],
        }
        assert snapshot["data"] == source["data"] and snapshot["binaryData"] == {"b": "AA=="}
        assert snapshot["immutable"] is True
        assert is_snapshot(snapshot) and not is_snapshot(source)
        source["data"]["a"] = "changed"
        assert snapshot["data"] == {"a": "1"}  # a copy, not a view

    def test_secret_keeps_its_type(self) -> None:
        secret = {
            "kind": "Secret",
            "metadata": {"name": "tls"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Yw==", "tls.key": "aw=="},
        }
        snapshot = build_snapshot(KEY, "secret", secret)
        assert snapshot["kind"] == "Secret" and snapshot["type"] == "kubernetes.io/tls"
        assert "namespace" not in snapshot["metadata"]

    def test_source_label_only_when_the_name_is_a_valid_label_value(self) -> None:
        long_name = "x" * 70
        snapshot = build_snapshot(KEY, "configmap", configmap(long_name))
        assert labels.SOURCE not in snapshot["metadata"]["labels"]
        assert snapshot["metadata"]["annotations"][labels.SOURCE_NAME] == long_name


class TestScope:
    def test_namespaces(self) -> None:
        assert namespace_never_touched("kube-system", None)
        assert namespace_never_touched("configpin", "configpin")
        assert not namespace_never_touched("shop", "configpin")
        assert namespace_opted_in({labels.INJECT: "enabled"})
        assert not namespace_opted_in({labels.INJECT: "true"})
        assert not namespace_opted_in({})

    def test_opt_out_annotation_on_any_level(self) -> None:
        out = {"annotations": {labels.INJECT: "False"}}
        assert opted_out(None, out)
        assert opted_out(out, {})
        assert not opted_out({"annotations": {labels.INJECT: "true"}}, None)

    def test_live_list_is_merged_and_normalised(self) -> None:
        workload = {"annotations": {labels.LIVE: "configmap/tls-bundle, Secret/db ,bogus,secret/"}}
        template = {"annotations": {labels.LIVE: "configmaps/extra"}}
        assert live_references(workload, template) == {
            "configmap/tls-bundle",
            "secret/db",
            "configmap/extra",
        }

    @pytest.mark.parametrize(
        ("source", "kind", "live"),
        [
            ({"type": "kubernetes.io/dockerconfigjson"}, "secret", True),
            ({"type": "kubernetes.io/service-account-token"}, "secret", True),
            ({"type": "kubernetes.io/dockercfg"}, "secret", True),
            ({"type": "Opaque"}, "secret", False),
            ({"metadata": {"annotations": {labels.INJECT: "false"}}}, "configmap", True),
            ({"metadata": {}}, "configmap", False),
        ],
    )
    def test_sources_that_stay_live(self, source: dict[str, Any], kind: str, live: bool) -> None:
        assert source_stays_live(source, kind) is live


class TestPins:
    def test_encoding_is_canonical(self) -> None:
        value = encode_pins({"secret/db": "db-x", "configmap/a": "a-y"})
        assert value == '{"configmap/a":"a-y","secret/db":"db-x"}'
        assert parse_pins({"annotations": {labels.PINS: value}}) == {
            "configmap/a": "a-y",
            "secret/db": "db-x",
        }

    @pytest.mark.parametrize("raw", ["not json", "[1]", '{"a": 1}', None])
    def test_unreadable_pins_count_as_none(self, raw: Any) -> None:
        assert parse_pins({"annotations": {labels.PINS: raw}}) == {}

    def test_unpinned_template_maps_pins_back_and_drops_the_annotation(self) -> None:
        pinned = {
            "metadata": {"annotations": {labels.PINS: '{"configmap/app":"app-x"}'}},
            "spec": {"volumes": [{"name": "v", "configMap": {"name": "app-x"}}]},
        }
        plain = {"spec": {"volumes": [{"name": "v", "configMap": {"name": "app"}}]}}
        pins = [parse_pins(pinned["metadata"])]
        assert unpinned_template(pinned, pins) == unpinned_template(plain, pins) == plain


def _apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(obj, ops)
    return result


class TestPatch:
    def pod(self, metadata: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": metadata,
            "spec": {"volumes": [{"name": "v", "configMap": {"name": "app"}}]},
        }

    def test_adds_the_annotations_map_when_absent(self) -> None:
        pod = self.pod({"name": "p"})
        refs = find_references(pod["spec"], "/spec")
        ops = patch_operations(pod, refs, {refs[0].pointer: "app-x"}, "/metadata", "{}")
        assert ops == [
            {"op": "replace", "path": "/spec/volumes/0/configMap/name", "value": "app-x"},
            {"op": "add", "path": "/metadata/annotations", "value": {labels.PINS: "{}"}},
        ]
        assert _apply(pod, ops)["metadata"]["annotations"] == {labels.PINS: "{}"}

    def test_escapes_the_annotation_key(self) -> None:
        pod = self.pod({"annotations": {"other": "1"}})
        ops = patch_operations(pod, [], {}, "/metadata", "{}")
        assert ops == [
            {"op": "add", "path": "/metadata/annotations/configpin.io~1pins", "value": "{}"}
        ]
        assert _apply(pod, ops)["metadata"]["annotations"] == {"other": "1", labels.PINS: "{}"}

    def test_adds_metadata_when_absent_and_removes_a_stale_annotation(self) -> None:
        bare: dict[str, Any] = {"spec": {}}
        ops = patch_operations(bare, [], {}, "/metadata", "{}")
        assert _apply(bare, ops) == {"spec": {}, "metadata": {"annotations": {labels.PINS: "{}"}}}
        stale = self.pod({"annotations": {labels.PINS: "{}"}})
        ops = patch_operations(stale, [], {}, "/metadata", None)
        assert json.dumps(_apply(stale, ops)["metadata"]) == '{"annotations": {}}'

    def test_no_operations_when_nothing_changes(self) -> None:
        pod = self.pod({"annotations": {labels.PINS: "{}"}})
        refs = find_references(pod["spec"], "/spec")
        assert patch_operations(pod, refs, {}, "/metadata", "{}") == []
