"""Roll-on-change decisions, without a server: opt-in, what a template tracks, what counts as
a change (against the record, never the pins), the debounce and the rate limit."""

import json
from typing import Any

from app.domain.rollonchange import (
    MISSING,
    RESTARTED_AT,
    ROLLED_FOR,
    Debouncer,
    RateLimit,
    Record,
    changed_sources,
    describe_change,
    kept_record,
    newest_record,
    next_record,
    opted_in,
    parse_record,
    record_behind,
    roll_patch,
    rollable,
    tracked_sources,
)
from app.domain.workloads import DEPLOYMENT, Workloads

OPT_IN = {"annotations": {"configpin.io/rollout-on-change": "true"}}


def template(
    pins: dict[str, str], volumes: list[dict[str, Any]], **annotations: str
) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {"configpin.io/pins": json.dumps(pins), **annotations}},
        "spec": {"containers": [{"name": "app"}], "volumes": volumes},
    }


PINNED = template(
    {"secret/db": "db-bbbbbbbbbb", "configmap/app-config": "app-config-cccccccccc"},
    [
        {"name": "db", "secret": {"secretName": "db-bbbbbbbbbb"}},
        {"name": "cfg", "configMap": {"name": "app-config-cccccccccc"}},
    ],
)


def test_opt_in_on_the_workload_or_its_namespace_and_the_workload_wins() -> None:
    assert opted_in(OPT_IN, None)
    assert opted_in({}, OPT_IN)
    assert not opted_in({}, {})
    assert not opted_in({"annotations": {"configpin.io/rollout-on-change": "false"}}, OPT_IN)
    assert not opted_in({"annotations": {"configpin.io/rollout-on-change": "yes"}}, None)


def test_tracked_sources_are_the_pinned_ones_with_their_digests() -> None:
    assert tracked_sources({}, PINNED) == {
        "secret/db": "bbbbbbbbbb",
        "configmap/app-config": "cccccccccc",
    }


def test_a_required_live_reference_is_tracked_as_missing_optional_and_live_ones_are_not() -> None:
    tmpl = template(
        {},
        [
            {"name": "a", "secret": {"secretName": "later"}},
            {"name": "b", "secret": {"secretName": "maybe", "optional": True}},
            {"name": "c", "configMap": {"name": "tls-bundle"}},
        ],
    )
    meta = {"annotations": {"configpin.io/live": "configmap/tls-bundle"}}
    assert tracked_sources(meta, tmpl) == {"secret/later": MISSING}


def test_no_record_compares_against_the_pins() -> None:
    tracked = tracked_sources({}, PINNED)
    same = {"secret/db": "bbbbbbbbbb", "configmap/app-config": "cccccccccc"}
    assert changed_sources(tracked, None, same) == []
    assert changed_sources(tracked, None, same | {"secret/db": "dddddddddd"}) == ["secret/db"]


def test_after_an_undo_the_record_not_the_older_pins_decides() -> None:
    # Rolled for db=dddddddddd, then undone: the template pins bbbbbbbbbb again.
    tracked = tracked_sources({}, PINNED)
    record = Record(1, {"secret/db": "dddddddddd", "configmap/app-config": "cccccccccc"})
    now = {"secret/db": "dddddddddd", "configmap/app-config": "cccccccccc"}
    assert changed_sources(tracked, record, now) == []
    # ...until the source changes again.
    assert changed_sources(tracked, record, now | {"secret/db": "eeeeeeeeee"}) == ["secret/db"]
    # Back to the content the undone revision pins: no rollout, the record catches up.
    back = now | {"secret/db": "bbbbbbbbbb"}
    assert changed_sources(tracked, record, back) == []
    assert record_behind(tracked, record, back)
    assert not record_behind(tracked, record, now)


def test_a_template_already_on_the_new_content_is_not_rolled_its_record_catches_up() -> None:
    # The Secret was edited, then the image changed before the debounce ran out: the
    # webhook pinned the new content with the image change.
    tracked = tracked_sources({}, PINNED)
    record = Record(1, {"secret/db": "aaaaaaaaaa", "configmap/app-config": "cccccccccc"})
    now = {"secret/db": "bbbbbbbbbb", "configmap/app-config": "cccccccccc"}
    assert changed_sources(tracked, record, now) == []
    assert record_behind(tracked, record, now)
    assert next_record(tracked, record, now).sources["secret/db"] == "bbbbbbbbbb"
    assert record_behind(tracked, None, now)  # never seen: adopted


def test_a_required_source_that_appears_is_a_change_one_that_disappears_is_not() -> None:
    tracked = {"secret/later": MISSING, "secret/db": "bbbbbbbbbb"}
    assert changed_sources(tracked, None, {"secret/later": "ffffffffff", "secret/db": MISSING}) == [
        "secret/later"
    ]
    record = Record(2, {"secret/later": MISSING, "secret/db": "bbbbbbbbbb"})
    assert changed_sources(tracked, record, {"secret/later": MISSING}) == []
    assert not record_behind(tracked, record, {"secret/later": MISSING})
    message = describe_change(["secret/db", "secret/later"], ["secret/later"])
    assert message.startswith("secret db changed, secret later appeared: rolling out")


def test_a_source_that_stays_live_is_never_a_change() -> None:
    # The caller leaves out a source opted out by its own annotation.
    assert changed_sources({"secret/db": "bbbbbbbbbb"}, None, {}) == []


def test_records_round_trip_and_the_newest_wins() -> None:
    record = Record(3, {"secret/db": "dddddddddd"})
    patch = roll_patch(DEPLOYMENT, "42", record, "2026-11-27T01:00:00Z")
    metadata = patch["metadata"]
    assert metadata["resourceVersion"] == "42"
    assert parse_record(metadata) == record
    assert patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == (
        "2026-11-27T01:00:00Z"
    )
    assert "spec" not in roll_patch(DEPLOYMENT, "42", record, None)  # an adoption is metadata only
    assert parse_record({"annotations": {ROLLED_FOR: "not json"}}) is None
    assert parse_record({"annotations": {ROLLED_FOR: '{"n": true, "sources": {}}'}}) is None
    assert newest_record([None, Record(1, {}), record, Record(2, {})]) == record
    assert newest_record([None]) is None


def test_an_update_that_changes_the_template_never_takes_the_record_back() -> None:
    newer = Record(2, {"secret/db": "dddddddddd"})
    older = Record(1, {"secret/db": "bbbbbbbbbb"})

    def deployment(record: Record | None, image: str) -> dict[str, Any]:
        metadata = {"annotations": {ROLLED_FOR: record.encode()}} if record else {}
        containers = [{"name": "app", "image": image}]
        return {"metadata": metadata, "spec": {"template": {"spec": {"containers": containers}}}}

    current = deployment(newer, "app:2")
    # `kubectl rollout undo`: the old ReplicaSet's template and annotations, with or without
    # a record (one made before the workload opted in).
    assert kept_record(DEPLOYMENT, current, deployment(older, "app:1")) == newer.encode()
    assert kept_record(DEPLOYMENT, current, deployment(None, "app:1")) == newer.encode()
    # The controller's own rollout counts on; a record of the same number is the update's.
    assert kept_record(DEPLOYMENT, current, deployment(Record(3, {}), "app:1")) is None
    assert kept_record(DEPLOYMENT, current, deployment(Record(2, {}), "app:1")) is None
    # An update that leaves the template alone is let through as written.
    assert kept_record(DEPLOYMENT, current, deployment(None, "app:2")) is None
    assert kept_record(DEPLOYMENT, current, deployment(older, "app:2")) is None
    # Nothing to keep.
    assert kept_record(DEPLOYMENT, deployment(None, "app:2"), deployment(None, "app:1")) is None


def test_the_next_record_holds_every_tracked_source_and_counts_on() -> None:
    tracked = {"secret/db": "bbbbbbbbbb", "secret/later": MISSING}
    current = {"secret/db": "dddddddddd"}
    assert next_record(tracked, Record(4, {}), current) == Record(
        5, {"secret/db": "dddddddddd", "secret/later": MISSING}
    )
    assert next_record(tracked, None, current).n == 1


def test_edits_within_the_quiet_time_become_one_rollout() -> None:
    debounce = Debouncer(quiet=5, longest=60)
    assert not debounce.ready("w", (("secret/db", "a"),), 0)
    assert not debounce.ready("w", (("secret/db", "b"),), 2)
    assert not debounce.ready("w", (("secret/db", "c"),), 4)
    assert not debounce.ready("w", (("secret/db", "c"),), 8.9)
    assert debounce.ready("w", (("secret/db", "c"),), 9)
    debounce.forget("w")
    assert not debounce.ready("w", (("secret/db", "d"),), 10)


def test_edits_without_a_pause_still_roll_after_the_longest_wait() -> None:
    debounce = Debouncer(quiet=5, longest=12)
    ready = [debounce.ready("w", (("secret/db", str(t)),), t) for t in range(0, 14, 2)]
    assert ready == [False] * 6 + [True]


def test_debounce_forgets_workloads_that_are_gone() -> None:
    debounce = Debouncer(quiet=5, longest=60)
    debounce.ready("gone", (("secret/db", "a"),), 0)
    debounce.keep_only(["other"])
    assert not debounce.ready("gone", (("secret/db", "a"),), 6)  # starts afresh


def test_rate_limit_per_namespace() -> None:
    limit = RateLimit(count=2, window=60)
    assert limit.allow("a", 0)
    assert limit.allow("a", 1)
    assert not limit.allow("a", 2)
    assert limit.allow("b", 2)
    assert limit.allow("a", 60.5)


def test_rollable_kinds_come_from_the_workload_table() -> None:
    assert [k.kind for k in rollable(Workloads())] == [
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Rollout",
    ]  # not Pods, Jobs (an immutable template) nor ReplicaSets (a new template replaces no Pod)


# The controller's clock is time.monotonic(): seconds since an arbitrary start, far from 0.
BOOT = 86_400.0


def test_a_record_is_compact_json_and_keeps_string_digests_only() -> None:
    assert Record(2, {"secret/db": "d", "configmap/a": "c"}).encode() == (
        '{"n":2,"sources":{"configmap/a":"c","secret/db":"d"}}'
    )
    raw = '{"n": 1, "sources": {"secret/db": "d", "secret/odd": 5}}'
    assert parse_record({"annotations": {ROLLED_FOR: raw}}) == Record(1, {"secret/db": "d"})


def test_the_templates_own_live_list_and_live_by_default_references_are_not_tracked() -> None:
    volumes = [
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
        {"name": "cfg", "configMap": {"name": "app-config"}},
        {"name": "db", "secret": {"secretName": "db"}},
    ]
    spec = {
        "containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "../not-a-name"}}]}],
        "imagePullSecrets": [{"name": "registry"}],
        "volumes": volumes,
    }
    live = {"metadata": {"annotations": {"configpin.io/live": "secret/db"}}, "spec": spec}
    assert tracked_sources({}, live) == {"configmap/app-config": MISSING}


def test_a_pins_key_whose_source_is_not_an_object_name_is_no_pin() -> None:
    crafted = template({"configmap/../x": "app-config-cccccccccc"}, PINNED["spec"]["volumes"])
    assert tracked_sources({}, crafted) == {
        "configmap/app-config-cccccccccc": MISSING,
        "secret/db-bbbbbbbbbb": MISSING,
    }


def test_the_same_content_seen_again_waits_only_out_the_quiet_time() -> None:
    debounce = Debouncer(quiet=5, longest=60)
    signature = (("secret/db", "a"),)
    assert not debounce.ready("w", signature, BOOT)
    assert debounce.ready("w", signature, BOOT + 5)
    assert not Debouncer(quiet=5, longest=12).ready("v", signature, BOOT + 1)
    debounce.forget("w")
    debounce.forget("never-seen")
    assert not debounce.ready("w", signature, BOOT + 6)  # starts afresh


def test_a_rollout_leaves_the_window_exactly_window_seconds_later() -> None:
    limit = RateLimit(count=1, window=60)
    assert limit.allow("a", BOOT)
    assert not limit.allow("a", BOOT + 59.9)
    assert limit.allow("a", BOOT + 60)
