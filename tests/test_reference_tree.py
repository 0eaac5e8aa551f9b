"""The walker's field tree, built from the PINNED_FIELDS and LIVE_FIELDS tables.

The module builds its tree once, at import; this test builds it again, so that a change to
the builder shows here (and to mutation testing, which switches a change on only after
the import)."""

from typing import Any

from app.domain import references
from app.domain.references import LIVE_FIELDS, PINNED_FIELDS


def spec_with_every_field() -> tuple[dict[str, Any], set[tuple[str, str, str, bool]]]:
    """A pod spec naming a distinct object in every field of the tables, one list item
    deep, and the (pointer, kind, name, live by default) each must be found as."""
    spec: dict[str, Any] = {}
    expected = set()
    for number, (field, kind) in enumerate((PINNED_FIELDS | LIVE_FIELDS).items()):
        *parents, leaf = field.split(".")
        node, pointer = spec, "/spec"
        for part in parents:
            if part.endswith("[]"):
                items = node.setdefault(part[:-2], [{}])
                node, pointer = items[0], f"{pointer}/{part[:-2]}/0"
            else:
                node, pointer = node.setdefault(part, {}), f"{pointer}/{part}"
        node[leaf] = f"object-{number}"
        expected.add((f"{pointer}/{leaf}", kind, f"object-{number}", field in LIVE_FIELDS))
    return spec, expected


def test_a_tree_built_from_the_tables_finds_every_field_with_its_kind() -> None:
    spec, expected = spec_with_every_field()
    found: list[references.Reference] = []
    references._walk(spec, references._field_tree(), "/spec", found)
    assert {(r.pointer, r.kind, r.name, r.live_by_default) for r in found} == expected
    assert len(found) == len(expected) == len(PINNED_FIELDS) + len(LIVE_FIELDS)


def test_the_tree_in_use_is_the_one_built_from_the_tables() -> None:
    assert references._field_tree() == references._FIELD_TREE
