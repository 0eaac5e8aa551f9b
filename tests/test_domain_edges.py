"""Pure rules at their edges: name and label lengths, the key length, names that must never
change between releases, JSON pointers, hand-edited pins and live lists."""

from typing import Any

import pytest

from app.domain import labels
from app.domain.messages import listed
from app.domain.naming import InvalidKeyError, check_key, content_digest
from app.domain.pinning import patch_operations, snapshot_sources, unpinned_template
from app.domain.pointer import escape, resolve
from app.domain.references import find_references
from app.domain.scope import live_references
from app.domain.snapshots import build_snapshot, verified_source


class TestLengths:
    def test_an_object_name_has_at_most_253_characters(self) -> None:
        assert labels.is_object_name("a" * 253)
        assert not labels.is_object_name("a" * 254)

    def test_a_label_value_has_at_most_63_characters(self) -> None:
        assert labels.is_label_value("a" * 63)
        assert not labels.is_label_value("a" * 64)

    def test_a_key_of_exactly_the_minimum_length_is_accepted(self) -> None:
        assert check_key(b"k" * 16) == b"k" * 16
        with pytest.raises(InvalidKeyError, match="at least 16 bytes, got 15"):
            check_key(b"k" * 15)


class TestNamesAreStable:
    """Snapshot names must not change between releases: a new name for the same content
    copies every source again at the next rollout. These are the names this release gives."""

    KEY = b"name-stability-key-0123456789"

    @pytest.mark.parametrize(
        ("kind", "source", "digest", "unbound"),
        [
            ("configmap", {"data": {"greeting": "grüß dich ☃"}}, "qmwtszbn6z", "96n4ssscrw"),
            (
                "secret",
                {"type": "Opaque", "data": {"pw": "aHVudGVyMg=="}},
                "7wd2zrq8cn",
                "z4r57wt5pp",
            ),
            (
                "configmap",
                {"data": {"a": "1"}, "binaryData": {"b": "AAE="}},
                "n99t8r9jt5",
                "lnhpbww7lj",
            ),
            (
                "secret",
                {
                    "metadata": {"namespace": "prod", "name": "db"},
                    "type": "Opaque",
                    "data": {"pw": "aHVudGVyMg=="},
                },
                "ttqrjs8654",
                "z4r57wt5pp",
            ),
        ],
        ids=["non-ascii", "secret", "binary-data", "bound-to-prod-db"],
    )
    def test_known_digests(
        self, kind: Any, source: dict[str, Any], digest: str, unbound: str
    ) -> None:
        # Names bind namespace and source name since this release (they changed once); the
        # unbound digests of earlier snapshots must stay recognisable.
        assert content_digest(self.KEY, kind, source) == digest
        assert content_digest(self.KEY, kind, source, bound=False) == unbound


def test_a_list_names_its_first_items_then_counts_the_others() -> None:
    assert listed(["a", "b", "c"], limit=3) == "a, b, c"
    assert listed(["a", "b", "c", "d"], limit=3) == "a, b, c and 1 more"
    assert listed([f"s{i}" for i in range(5010)]).endswith(", s9 and 5,000 more")


class TestPointers:
    def test_escape_follows_rfc_6901(self) -> None:
        assert escape("a~b/c") == "a~0b~1c"
        assert escape(3) == "3"

    def test_resolve_reads_escaped_segments_back(self) -> None:
        obj = {"a~b": {"c/d": 1}, "x~1": 2}
        assert resolve(obj, f"/{escape('a~b')}/{escape('c/d')}") == 1
        # `~01` is `~1` itself, not `/`: `~1` is read before `~0` (RFC 6901).
        assert resolve(obj, "/x~01") == 2

    def test_the_pins_annotation_can_sit_under_any_pointer(self) -> None:
        obj = {"items": [{}, {"meta/data": {"annotations": {"x": "y"}}}]}
        ops = patch_operations(obj, [], {}, "/items/1/meta~1data", "{}")
        assert ops == [
            {
                "op": "add",
                "path": "/items/1/meta~1data/annotations/configpin.io~1pins",
                "value": "{}",
            }
        ]
        missing = patch_operations(obj, [], {}, "/items/2/metadata", "{}")
        assert missing == [
            {
                "op": "add",
                "path": "/items/2/metadata",
                "value": {"annotations": {labels.PINS: "{}"}},
            }
        ]


class TestHandEditedAnnotations:
    def test_pins_of_unknown_kinds_or_without_a_source_are_ignored(self) -> None:
        pins = {"secret/": "db-x", "volume/cfg": "cfg-x", "configmap/app": "app-x"}
        assert snapshot_sources(pins) == {("configmap", "app-x"): "app"}

    def test_an_unpinned_template_keeps_its_other_annotations(self) -> None:
        template = {
            "metadata": {"annotations": {"team": "shop"}},
            "spec": {"volumes": [{"name": "v", "configMap": {"name": "app"}}]},
        }
        assert unpinned_template(template, [{}]) == template
        assert find_references(template["spec"], "/spec")[0].name == "app"

    def test_plural_and_capitalised_kinds_in_the_live_list(self) -> None:
        meta = {"annotations": {labels.LIVE: "secrets/db,Secrets/tls,CONFIGMAPS/app"}}
        assert live_references(meta) == {"secret/db", "secret/tls", "configmap/app"}


class TestVerifiedSource:
    KEY = b"verified-source-key-0123456789ab"

    def snapshot(self, name: str = "app-config") -> dict[str, Any]:
        source = {"metadata": {"name": name, "namespace": "shop"}, "data": {"k": "v"}}
        return build_snapshot(self.KEY, "configmap", source)

    def test_a_snapshot_is_proven_by_its_name_under_the_key(self) -> None:
        assert verified_source(self.snapshot(), "configmap", "shop", self.KEY) == "app-config"

    @pytest.mark.parametrize(
        "change",
        [
            {"immutable": False},  # could change after it is pinned to
            {"kind": "Secret"},  # read as a ConfigMap, yet not one
        ],
    )
    def test_each_property_it_must_have_is_checked_on_its_own(self, change: Any) -> None:
        assert verified_source({**self.snapshot(), **change}, "configmap", "shop", self.KEY) is None

    def test_without_configpins_labels_or_with_a_source_that_is_no_name_it_is_none(self) -> None:
        unlabelled = self.snapshot()
        unlabelled["metadata"]["labels"] = {}
        assert verified_source(unlabelled, "configmap", "shop", self.KEY) is None
        crafted = self.snapshot("../x")
        assert verified_source(crafted, "configmap", "shop", self.KEY) is None
