"""`configpin history | diff | unpin`, also installed as the kubectl plugin `kubectl configpin`.

Reads run as the user (kubeconfig, context and namespace as kubectl takes them); errors are one
line with exit status 2; `diff` exits 0 when equal and 1 when different, like diff(1).
"""

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from app.domain import labels
from app.domain.pinning import Pins
from app.domain.versions import (
    MissingSnapshotError,
    UsageError,
    colored_diff,
    diff_sources,
    history,
    history_document,
    history_table,
    parse_target,
    releasable,
    resource_name,
    template_diff,
    template_kinds,
    unpin,
    versioned_kinds,
)
from app.domain.workloads import WorkloadKind, Workloads, template_of
from app.kube.api import RawApi
from app.kube.versions import ClusterVersions, VersionsError, connect_as_user

COMMANDS = ("history", "diff", "unpin")
ERROR_STATUS = 2
Target = tuple[WorkloadKind, str]
API_TIMEOUT_SECONDS = 30.0


def _cluster_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--kubeconfig", default=default, help="default: $KUBECONFIG, then ~/.kube/config"
    )
    parser.add_argument(
        "--context", default=default, help="kubeconfig context (default: the current one)"
    )
    parser.add_argument(
        "-n", "--namespace", default=default, help="default: the context's namespace"
    )


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """The three subcommands, on `configpin`'s parser or the plugin's."""
    cluster = argparse.ArgumentParser(add_help=False)
    # Suppressed defaults: a value given before the subcommand (the plugin's parser takes
    # these flags too, as kubectl does) is not overwritten by the subcommand's default.
    _cluster_flags(cluster, argparse.SUPPRESS)

    show = commands.add_parser(
        "history", parents=[cluster], help="revisions of a workload and the config each ran with"
    )
    show.add_argument("target", metavar="KIND/NAME", help="deploy/web, sts/db, ds/agent")
    show.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    diff = commands.add_parser(
        "diff",
        parents=[cluster],
        help="config differences between two revisions (Secrets: key names only)",
    )
    diff.add_argument("target", metavar="KIND/NAME")
    diff.add_argument("--revision", type=int, required=True, metavar="A")
    diff.add_argument("--to", type=int, metavar="B", help="default: the live revision")

    back = commands.add_parser(
        "unpin",
        parents=[cluster],
        help="name the sources again in a workload's template and drop its pins",
    )
    back.add_argument("target", metavar="KIND/NAME", nargs="?")
    back.add_argument("--all", action="store_true", help="every pinned workload of the namespace")
    back.add_argument("--dry-run", action="store_true", help="show the change, write nothing")


def run(args: argparse.Namespace) -> int:
    """Run a parsed `history`, `diff` or `unpin`; errors become one line and status 2."""
    try:
        for flag in ("kubeconfig", "context", "namespace"):
            args.__dict__.setdefault(flag, None)  # `configpin` has them after the subcommand only
        kinds = versioned_kinds(Workloads())
        target = parse_target(args.target, kinds) if args.target else None  # usage errors first
        if args.command == "unpin" and args.all == bool(target):
            raise UsageError("give either KIND/NAME or --all")
        api_client, default_namespace = connect_as_user(args.kubeconfig, args.context)
        cluster = ClusterVersions(RawApi(api_client, API_TIMEOUT_SECONDS))
        namespace = args.namespace or default_namespace
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        if args.command == "history" and target:
            return _history(cluster, namespace, target, args.output, color)
        if args.command == "diff" and target:
            return _diff(cluster, namespace, target, args.revision, args.to, color)
        return _unpin(cluster, namespace, target or kinds, args.dry_run, color)
    except (UsageError, VersionsError, MissingSnapshotError) as error:
        print(f"error: {error}", file=sys.stderr)
        return ERROR_STATUS


def plugin_main(argv: Sequence[str] | None = None) -> int:
    """`kubectl configpin ...`: kubectl runs `kubectl-configpin` with the words after it."""
    parser = argparse.ArgumentParser(
        prog="kubectl configpin",
        description="Read the config each revision of a workload was pinned to, or unpin it.",
    )
    _cluster_flags(parser, None)
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


def _history(
    cluster: ClusterVersions, namespace: str, target: Target, output: str, color: bool
) -> int:
    kind, name = target
    workload = cluster.workload(kind, namespace, name)
    revisions = cluster.revisions(kind, workload)
    if not any(revision.pins for revision in revisions) and not _pinned(kind, workload):
        raise VersionsError(f"{resource_name(kind)} {name!r} is not a pinned workload")
    rows = history(revisions, cluster.snapshots(namespace, revisions))
    if output == "table":
        sys.stdout.write(history_table(rows, datetime.datetime.now(datetime.UTC), color))
        return 0
    document = history_document(kind, namespace, name, rows)
    if output == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False))
    return 0


def _diff(
    cluster: ClusterVersions,
    namespace: str,
    target: Target,
    revision: int,
    to: int | None,
    color: bool,
) -> int:
    kind, name = target
    workload = cluster.workload(kind, namespace, name)
    revisions = cluster.revisions(kind, workload)
    if not revisions:
        raise VersionsError(f"{resource_name(kind)} {name!r} has no revisions yet")
    by_number = {r.number: r for r in revisions}
    wanted = [revision, revisions[-1].number if to is None else to]
    for number in wanted:
        if number not in by_number:
            known = ", ".join(str(r.number) for r in revisions)
            raise VersionsError(
                f"{resource_name(kind)} {name!r} has no revision {number} (it has {known})"
            )
    a, b = (by_number[number] for number in wanted)
    if not (a.pins or b.pins):
        raise VersionsError(
            f"{resource_name(kind)} {name!r} pins nothing at revision {a.number} or {b.number}"
        )
    diffs = diff_sources(a, b, cluster.snapshots(namespace, [a, b]))
    text = "".join(d.text for d in diffs)
    sys.stdout.write(colored_diff(text) if color else text)
    return 1 if diffs else 0


def _unpin(
    cluster: ClusterVersions,
    namespace: str,
    target: Target | list[WorkloadKind],
    dry_run: bool,
    color: bool,
) -> int:
    """One workload (KIND, NAME), or every pinned one of the namespace (a list of kinds);
    then release the snapshots no template in the namespace pins any more."""
    opted_in = cluster.namespace_labels(namespace).get(labels.INJECT) == labels.INJECT_ENABLED
    holders = cluster.workloads(namespace, template_kinds(Workloads()))
    if isinstance(target, tuple):
        kind, name = target
        workload = cluster.workload(kind, namespace, name)
        if not _pinned(kind, workload):
            raise VersionsError(f"{resource_name(kind)} {name!r} is not a pinned workload")
        chosen = [(kind, workload)]
    else:
        chosen = [(k, w) for k, w in holders if k in target and _pinned(k, w)]
        if not chosen:
            print(f"no pinned workloads in namespace {namespace!r}")
            return 0
    if opted_in and not dry_run:
        # The webhook would keep the pins on this very update (same template once unpinned).
        raise VersionsError(
            f"namespace {namespace!r} is still opted in ({labels.INJECT}={labels.INJECT_ENABLED}):"
            f" remove the label first, or annotate the workload {labels.INJECT}="
            f"{labels.INJECT_DISABLED} (its next update unpins it)"
        )
    dropped = [_unpin_one(cluster, kind, workload, dry_run, color) for kind, workload in chosen]
    unpinned_uids = {workload["metadata"]["uid"] for _, workload in chosen}
    kept = [
        unpin(template_of(k, w))[1] for k, w in holders if w["metadata"]["uid"] not in unpinned_uids
    ]
    snapshots = releasable(dropped, kept)
    if dry_run:
        names = ", ".join(f"{kind}/{name}" for kind, name in snapshots)
        print(f"would release (in-use finalizer): {names or 'nothing'}")
        return 0
    released = cluster.release(namespace, snapshots)
    if released:
        print(f"released (in-use finalizer): {', '.join(released)}")
    return 0


def _unpin_one(
    cluster: ClusterVersions,
    kind: WorkloadKind,
    workload: dict[str, Any],
    dry_run: bool,
    color: bool,
) -> Pins:
    """Unpin one workload (or show how); the pins it drops."""
    resource = f"{resource_name(kind)}/{workload['metadata']['name']}"
    template = template_of(kind, workload)
    unpinned, pins = unpin(template)
    if dry_run:
        text = template_diff(resource, template, unpinned)
        sys.stdout.write(colored_diff(text) if color else text)
        return pins
    written = cluster.replace_template(kind, workload, unpinned)
    if unpin(template_of(kind, written))[1]:
        # The webhook was still called (the namespace opted in again meanwhile) and kept them.
        raise VersionsError(f"{resource}: the webhook pinned it again; is the namespace opted in?")
    print(f"{resource} unpinned: {', '.join(sorted(pins))} live again")
    return pins


def _pinned(kind: WorkloadKind, workload: dict[str, Any]) -> bool:
    return bool(unpin(template_of(kind, workload))[1])
