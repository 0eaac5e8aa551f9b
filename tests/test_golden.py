"""Golden AdmissionReviews: every folder under tests/golden/ is one case, found automatically.

A case folder holds:
- `review.json`: the AdmissionReview the API server sends (input);
- `sources.json` (optional): `{"namespaces": {name: labels}, "objects": [ConfigMaps, Secrets,
  ReplicaSets]}` seeding the in-memory sources; without it the sources are empty;
- `expected-response.json`: the AdmissionReview answered, its `patch` shown decoded (a JSON
  array instead of base64) so that a reviewer can read it;
- `patched.json`: `request.object` after applying the patch;
- `snapshots.json`: the snapshots created, in order.

The patched object is reviewed again (a reinvocation, or the controller's own write): it
must need no patch.

`CONFIGPIN_UPDATE_GOLDEN=1 pytest tests/test_golden.py` rewrites the expected files that
differ from what the current code answers; each case it rewrote is reported as skipped (it
was not checked), the others were compared as usual. Read the diff before committing. It is
refused when `CI` is set: there a rewrite would make every case pass by construction, and
`make test` fails when tests/golden differs from what is committed.
"""

import base64
import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from fastapi.testclient import TestClient

from app.admission.pinner import Policy
from app.admission.service import Admission
from app.domain.pinning import parse_pins
from app.domain.pointer import resolve
from app.domain.workloads import Workloads
from app.metrics import Metrics
from app.web.app import create_app
from tests.fakes import MemorySources

ROOT = Path(__file__).parent.parent
GOLDEN = ROOT / "tests" / "golden"
KEY = b"golden-key-0123456789abcdef"


class GoldenUpdateRefusedError(RuntimeError):
    pass


def update_mode(environ: Mapping[str, str]) -> bool:
    """Whether to rewrite the expected files instead of only comparing them."""
    if environ.get("CONFIGPIN_UPDATE_GOLDEN") != "1":
        return False
    if environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        raise GoldenUpdateRefusedError(
            "CONFIGPIN_UPDATE_GOLDEN is refused when CI is set: golden files are compared there"
        )
    return True


UPDATE = update_mode(os.environ)
CASES = sorted(path.name for path in GOLDEN.iterdir() if (path / "review.json").is_file())


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def check_or_update(path: Path, actual: Any) -> bool:
    """Compare `actual` with the expected file; in update mode rewrite a missing or
    differing file instead, and say so (True)."""
    if path.is_file() and load(path) == actual:
        return False
    if UPDATE:
        path.write_text(dumps(actual), encoding="utf-8")
        return True
    assert path.is_file(), f"{path} is missing: run with CONFIGPIN_UPDATE_GOLDEN=1"
    raise AssertionError(f"{path} differs (CONFIGPIN_UPDATE_GOLDEN=1 refreshes it)")


def post(client: TestClient, review: dict[str, Any]) -> dict[str, Any]:
    http = client.post(
        "/mutate", content=json.dumps(review).encode(), headers={"content-type": "application/json"}
    )
    assert http.status_code == 200, http.text
    envelope: dict[str, Any] = http.json()
    assert envelope["response"]["uid"] == review["request"]["uid"]
    return envelope


def decoded(envelope: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the envelope with its patch decoded for reading, the patch operations)."""
    readable = copy.deepcopy(envelope)
    answer = readable["response"]
    if "patch" not in answer:
        assert "patchType" not in answer
        return readable, []
    assert answer["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(answer["patch"], validate=True))
    assert patch, "a patch field must not carry an empty patch"
    answer["patch"] = patch
    return readable, patch


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_golden_review(case: str) -> None:
    folder = GOLDEN / case
    review = load(folder / "review.json")
    seed = folder / "sources.json"
    sources = MemorySources.from_json(load(seed)) if seed.is_file() else MemorySources()
    metrics = Metrics()
    client = TestClient(
        create_app(Admission(sources, Policy(key=KEY), metrics), metrics, ready=lambda: True)
    )

    readable, patch = decoded(post(client, review))
    patched = jsonpatch.apply_patch(review["request"]["object"], patch)

    expected = {
        "expected-response.json": readable,
        "patched.json": patched,
        "snapshots.json": sources.created,
    }
    rewritten = [name for name, value in expected.items() if check_or_update(folder / name, value)]

    # Every pin names a snapshot that exists (created now or made earlier).
    kind = Workloads().find_object(patched)
    assert kind is not None
    holder = resolve(patched, kind.template) or {}
    for source_key, snapshot_name in parse_pins(holder.get("metadata")).items():
        kind = source_key.partition("/")[0]
        assert (review["request"]["namespace"], kind, snapshot_name) in sources.objects

    again = copy.deepcopy(review)
    again["request"]["object"] = patched
    _, second_patch = decoded(post(client, again))
    assert second_patch == [], "reviewing the patched object again must change nothing"
    if rewritten:
        where = folder.relative_to(ROOT)
        pytest.skip(f"rewrote {', '.join(rewritten)}: not compared; review `git diff {where}`")


@pytest.mark.parametrize(
    ("environ", "update"),
    [
        ({}, False),
        ({"CONFIGPIN_UPDATE_GOLDEN": "1"}, True),
        ({"CONFIGPIN_UPDATE_GOLDEN": "1", "CI": "false"}, True),
        ({"CONFIGPIN_UPDATE_GOLDEN": "0", "CI": "true"}, False),
    ],
)
def test_update_mode(environ: dict[str, str], update: bool) -> None:
    assert update_mode(environ) is update


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_update_mode_is_refused_under_ci(ci: str) -> None:
    with pytest.raises(GoldenUpdateRefusedError):
        update_mode({"CONFIGPIN_UPDATE_GOLDEN": "1", "CI": ci})
