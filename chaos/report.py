"""The chaos run's results: one table on the terminal, the same figures as JSON."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos.processes import Samples


def by_label(samples: Samples, name: str, label: str) -> dict[str, int]:
    """A counter's samples summed by one label: {"pinned": 412, ...}."""
    found: dict[str, int] = {}
    for (sample, labels), value in samples.items():
        if sample == name:
            key = dict(labels).get(label, "")
            found[key] = found.get(key, 0) + round(value)
    return dict(sorted(found.items()))


def total(samples: Samples, name: str) -> int:
    return sum(round(v) for (sample, _), v in samples.items() if sample == name)


def violations(results: Mapping[str, Any]) -> int:
    return sum(int(i["violations"]) for i in results["invariants"].values())


def passed(results: Mapping[str, Any]) -> bool:
    """No violation, every planned fault injected and every watch of the observer alive
    to the end (else the run proves less)."""
    return (
        violations(results) == 0
        and not results["faults"]["failed"]
        and not results["observer"]["errors"]
    )


def table(results: Mapping[str, Any]) -> str:
    rows: list[tuple[str, str]] = []

    def section(title: str, values: Mapping[str, Any]) -> None:
        rows.append((title, ""))
        for key, value in values.items():
            rows.append((f"  {key}", str(value)))

    rows.append(("seed", f"{results['seed']} (replay: make chaos SEED={results['seed']})"))
    rows.append(("profile", results["profile"]))
    rows.append(("wall time", f"{results['seconds']:.0f} s"))
    rollouts = results["rollouts"]
    section(
        "rollouts",
        {
            "done (typed with kubectl)": f"{rollouts['done']} of {rollouts['target']}",
            **{f"  {k}": v for k, v in rollouts["by_action"].items()},
            "rolled on change (controller)": rollouts["on_change"],
            "source edits": results["edits"],
        },
    )
    section("faults injected", results["faults"]["injected"])
    if results["faults"]["failed"]:
        section("faults that failed to inject (the run is void)", results["faults"]["failed"])
    section("admissions by outcome", results["admissions"])
    section("snapshots", results["snapshots"])
    section(
        "invariants (violations)",
        {name: found["violations"] for name, found in results["invariants"].items()},
    )
    section("checked by the observer", results["observer"]["checked"])
    section("denials seen by kubectl", results["denials"] or {"none": 0})
    section("process exits not injected (restarted)", results["restarts"] or {"none": 0})
    section(
        "cluster components that exited (restarted)",
        results["cluster_components_restarted"] or {"none": 0},
    )
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{label:<{width}}{value}" for label, value in rows]
    examples = [
        f"  {name}: {example}"
        for name, found in results["invariants"].items()
        for example in found.get("examples", [])[:5]
    ]
    if examples:
        lines += ["violations, first examples:", *examples]
    lines.append(f"VIOLATIONS: {violations(results)}")
    if results["faults"]["failed"]:
        lines.append(f"FAULTS NOT INJECTED: {sum(results['faults']['failed'].values())}")
    for error in results["observer"]["errors"]:
        lines.append(f"OBSERVER FAILED (its invariants went unwatched): {error}")
    return "\n".join(lines)


def write(results: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
