"""Golden AdmissionReviews: every folder under tests/golden/ is one case, found automatically.

A case folder holds:
- `review.json`: the AdmissionReview the API server sends (input);
- `sources.json` (optional): `{"namespaces": {name: labels}, "objects": [ConfigMaps, Secrets]}`
  seeding the in-memory sources; without it the sources are empty;
- `expected-response.json`: the AdmissionReview answered, its `patch` shown decoded (a JSON
  array instead of base64) so that a reviewer can read it;
- `patched.json`: `request.object` after applying the patch;
- `snapshots.json`: the snapshots created, in order.

The patched object is reviewed again (a reinvocation, or the controller's own write): it
must need no patch. `CONFIGPIN_UPDATE_GOLDEN=1 pytest tests/test_golden.py` rewrites the
expected files from the current code instead of comparing; read the diff before committing.
"""

import base64
import copy
import json
import os
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

GOLDEN = Path(__file__).parent / "golden"
KEY = b"golden-key-0123456789abcdef"
UPDATE = os.environ.get("CONFIGPIN_UPDATE_GOLDEN") == "1"
CASES = sorted(path.name for path in GOLDEN.iterdir() if (path / "review.json").is_file())


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def check_or_update(path: Path, actual: Any) -> None:
    if UPDATE:
        path.write_text(dumps(actual), encoding="utf-8")
        assert load(path) == actual  # passes only once written
        return
    assert path.is_file(), f"{path} is missing: run with CONFIGPIN_UPDATE_GOLDEN=1"
    assert actual == load(path), f"{path} differs (CONFIGPIN_UPDATE_GOLDEN=1 refreshes it)"


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

    check_or_update(folder / "expected-response.json", readable)
    check_or_update(folder / "patched.json", patched)
    check_or_update(folder / "snapshots.json", sources.created)

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
