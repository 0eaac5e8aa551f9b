"""The reference walker, and the test that keeps it complete as the PodSpec grows."""

import re
from typing import Any

import jsonpointer
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client import models

from app.domain.references import (
    CONTAINER_LISTS,
    LIVE_FIELDS,
    NOT_REFERENCES,
    PINNED_FIELDS,
    find_references,
)

REFERENCE_LIKE = re.compile(r"secret|config_?map", re.IGNORECASE)


def _model_fields(model: type, prefix: str, seen: frozenset[type]) -> list[str]:
    """Every field path under `model` (JSON names) whose name or type mentions a Secret or
    ConfigMap, stopping at the first such field on each branch (as TestPodSecrets does)."""
    paths: list[str] = []
    for attr, type_name in model.openapi_types.items():
        json_name = model.attribute_map[attr]
        inner = re.sub(r"^(?:List\[|list\[|Dict\[str, |dict\(str, )(.*)[\])]$", r"\1", type_name)
        is_list = type_name.lower().startswith("list[")
        path = f"{prefix}{json_name}{'[]' if is_list else ''}"
        if REFERENCE_LIKE.search(json_name) or REFERENCE_LIKE.search(inner):
            paths.append(path)
            continue
        child = getattr(models, inner, None)
        if isinstance(child, type) and child not in seen:
            paths.extend(_model_fields(child, path + ".", seen | {child}))
    return paths


def test_every_reference_field_of_the_pod_spec_is_classified() -> None:
    found = set(_model_fields(models.V1PodSpec, "", frozenset({models.V1PodSpec})))
    # The reflection stops at the reference object (`volumes[].secret`) or at the name
    # field itself (`volumes[].azureFile.secretName`): a declared field covers both.
    declared = {
        f for field in (*PINNED_FIELDS, *LIVE_FIELDS) for f in (field, field.rpartition(".")[0])
    }
    unclassified = sorted(path for path in found if path not in declared | NOT_REFERENCES)
    assert not unclassified, (
        "the PodSpec has ConfigMap/Secret reference fields that the walker neither pins "
        f"nor lists as live: {unclassified}"
    )


def test_the_reflection_sees_known_fields() -> None:
    # Guards the guard: if the reflection stopped finding fields, the test above would pass
    # for nothing.
    found = set(_model_fields(models.V1PodSpec, "", frozenset({models.V1PodSpec})))
    for expected in (
        "containers[].env[].valueFrom.configMapKeyRef",
        "ephemeralContainers[].envFrom[].secretRef",
        "volumes[].projected.sources[].secret",
        "volumes[].csi.nodePublishSecretRef",
        "imagePullSecrets[]",
        "volumes[].cephfs.secretFile",
    ):
        assert expected in found


def test_pinned_fields_cover_all_three_container_lists() -> None:
    for containers in CONTAINER_LISTS:
        assert f"{containers}[].envFrom[].configMapRef.name" in PINNED_FIELDS


def _pod_spec() -> dict[str, Any]:
    def container(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": f"{name}-cm", "key": "a"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": f"{name}-s", "key": "b"}}},
                {"name": "C", "value": "plain"},
                {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "envFrom": [
                {"configMapRef": {"name": f"{name}-cm2", "optional": True}},
                {"secretRef": {"name": f"{name}-s2"}},
            ],
        }

    return {
        "containers": [container("app")],
        "initContainers": [container("init")],
        "ephemeralContainers": [container("debug")],
        "imagePullSecrets": [{"name": "registry"}],
        "volumes": [
            {"name": "v1", "configMap": {"name": "vol-cm"}},
            {"name": "v2", "secret": {"secretName": "vol-s", "optional": True}},
            {
                "name": "v3",
                "projected": {
                    "sources": [
                        {"configMap": {"name": "proj-cm"}},
                        {"secret": {"name": "proj-s"}},
                        {"downwardAPI": {"items": []}},
                        {"serviceAccountToken": {"path": "token"}},
                    ]
                },
            },
            {"name": "v4", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi-s"}}},
            {"name": "v5", "emptyDir": {}},
        ],
    }


def test_finds_every_kind_of_reference_with_its_pointer() -> None:
    spec = _pod_spec()
    refs = find_references(spec, "/spec/template/spec")
    by_name = {r.name: r for r in refs}
    assert set(by_name) == {
        *(f"{c}-{s}" for c in ("app", "init", "debug") for s in ("cm", "s", "cm2", "s2")),
        "registry",
        "vol-cm",
        "vol-s",
        "proj-cm",
        "proj-s",
        "csi-s",
    }
    assert (
        by_name["app-cm"].pointer
        == "/spec/template/spec/containers/0/env/0/valueFrom/configMapKeyRef/name"
    )
    assert by_name["vol-s"].pointer == "/spec/template/spec/volumes/1/secret/secretName"
    assert by_name["proj-s"].kind == "secret"
    assert by_name["proj-cm"].kind == "configmap"
    assert by_name["app-cm2"].optional and by_name["vol-s"].optional
    assert not by_name["app-cm"].optional
    assert {r.name for r in refs if r.live_by_default} == {"registry", "csi-s"}


def test_ignores_malformed_and_empty_entries() -> None:
    spec = {
        "containers": [
            {"env": "not-a-list"},
            {"env": [None, {"valueFrom": {"configMapKeyRef": {"name": ""}}}]},
            "not-a-mapping",
        ],
        "volumes": [{"configMap": {"name": 7}}, {"secret": None}],
    }
    assert find_references(spec, "/spec") == []


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@st.composite
def pod_specs(draw: st.DrawFn) -> dict[str, Any]:
    def container() -> dict[str, Any]:
        env = [
            {
                "name": "E",
                "valueFrom": {
                    draw(st.sampled_from(["configMapKeyRef", "secretKeyRef"])): {
                        "name": draw(names),
                        "key": "k",
                    }
                },
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        env_from = [
            {draw(st.sampled_from(["configMapRef", "secretRef"])): {"name": draw(names)}}
            for _ in range(draw(st.integers(0, 2)))
        ]
        return {"name": draw(names), "env": env, "envFrom": env_from}

    volumes: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        choice = draw(st.sampled_from(["configMap", "secret", "projected"]))
        if choice == "configMap":
            volumes.append({"name": "v", "configMap": {"name": draw(names)}})
        elif choice == "secret":
            volumes.append({"name": "v", "secret": {"secretName": draw(names)}})
        else:
            sources = [
                {draw(st.sampled_from(["configMap", "secret"])): {"name": draw(names)}}
                for _ in range(draw(st.integers(0, 3)))
            ]
            volumes.append({"name": "v", "projected": {"sources": sources}})
    return {
        **{key: [container() for _ in range(draw(st.integers(0, 2)))] for key in CONTAINER_LISTS},
        "volumes": volumes,
    }


@given(pod_specs())
def test_every_reported_pointer_resolves_to_the_name(spec: dict[str, Any]) -> None:
    obj = {"spec": {"template": {"spec": spec}}}
    for ref in find_references(spec, "/spec/template/spec"):
        assert jsonpointer.resolve_pointer(obj, ref.pointer) == ref.name


@given(pod_specs())
def test_counts_every_reference(spec: dict[str, Any]) -> None:
    expected = sum(
        len(c["env"]) + len(c["envFrom"]) for key in CONTAINER_LISTS for c in spec[key]
    ) + sum(len(v["projected"]["sources"]) if "projected" in v else 1 for v in spec["volumes"])
    assert len(find_references(spec, "")) == expected
