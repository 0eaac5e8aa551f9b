"""configpin's command line: serve, controller, release, render, certs; history, diff and
unpin (also installed as the kubectl plugin `kubectl configpin`)."""

import argparse
import datetime
import logging
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from app import versions_cli
from app.domain.naming import InvalidKeyError, check_key
from app.kube.api import ApiError, ApiUnreachableError, RawApi
from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from app.controller.rollonchange import RollOnChangeController
    from app.metrics import ControllerMetrics

log = logging.getLogger("configpin")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="configpin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the admission webhook over HTTPS")
    serve.add_argument("--cert", type=Path, help="serving certificate (PEM), unless self-managed")
    serve.add_argument("--key", type=Path, help="serving private key (PEM), unless self-managed")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a webhook serves the cluster
    serve.add_argument("--kubeconfig", type=Path, help="default: in-cluster service account")
    serve.add_argument("--key-file", type=Path, help="HMAC key file (CONFIGPIN_HMAC_KEY_FILE)")

    controller = commands.add_parser(
        "controller", help="own, sweep and release snapshots (one leader among replicas)"
    )
    controller.add_argument("--kubeconfig", type=Path, help="default: in-cluster service account")
    controller.add_argument("--metrics-port", type=int, help="CONFIGPIN_METRICS_PORT (0: none)")

    release = commands.add_parser(
        "release", help="remove configpin's in-use finalizer from snapshots (uninstall)"
    )
    release.add_argument("--all", action="store_true", required=True, help="every snapshot")
    release.add_argument("--kubeconfig", type=Path, help="default: in-cluster service account")
    release.add_argument(
        "--webhook-configuration",
        help="delete this MutatingWebhookConfiguration first, so no new snapshot is made",
    )

    render = commands.add_parser(
        "render", help="pin every workload kind of the table in manifest files"
    )
    render.add_argument("-f", "--filename", type=Path, action="append", required=True)
    render.add_argument("--key-file", type=Path, help="the cluster's HMAC key, for its names")

    certs = commands.add_parser("certs", help="make a CA, a serving certificate and an HMAC key")
    certs.add_argument("--out", type=Path, required=True)
    certs.add_argument("--san", action="append", required=True, help="DNS name or IP address")
    versions_cli.add_commands(commands)

    args = parser.parse_args(argv)
    if args.command in versions_cli.COMMANDS:
        return versions_cli.run(args)
    if args.command == "serve":
        return _serve(args, _settings())
    if args.command == "controller":
        return _controller(args, _settings())
    if args.command == "release":
        return _release(args, _settings())
    if args.command == "render":
        return _render(args, _settings())
    return _certs(args)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as error:
        problems = "; ".join(
            f"CONFIGPIN_{str(e['loc'][0]).upper()}"
            + "".join(f"[{p}]" for p in e["loc"][1:])
            + f": {e['msg']}"
            for e in error.errors(include_input=False)
        )
        raise SystemExit(f"configpin: invalid settings: {problems}") from None


def _read_key(path: Path) -> bytes:
    try:
        return check_key(path.read_bytes().strip())
    except OSError as error:
        raise SystemExit(
            f"configpin: cannot read the HMAC key file {path}: {error.strerror}"
        ) from None
    except InvalidKeyError as error:
        raise SystemExit(f"configpin: {path}: {error}") from None


def _render(args: argparse.Namespace, settings: Settings) -> int:
    from app.render import RenderError, dump, load_documents, render

    if args.key_file:
        key = _read_key(args.key_file)
    else:
        key = secrets.token_bytes(32)
        print(
            "configpin: no --key-file, using a random key: "
            "snapshot names will differ from a cluster's",
            file=sys.stderr,
        )
    try:
        texts = [(str(path), path.read_text(encoding="utf-8")) for path in args.filename]
        kinds = settings.workloads()
        output = dump(render(load_documents(texts, kinds), key, kinds))
    except OSError as error:
        print(f"configpin: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except UnicodeDecodeError:
        print("configpin: input is not UTF-8 text", file=sys.stderr)
        return 1
    except RenderError as error:
        print(f"configpin: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(output)  # all or nothing: built in full before the first byte
    return 0


def _certs(args: argparse.Namespace) -> int:
    from app.certs import write_bundle

    now = datetime.datetime.now(datetime.UTC)
    for path in write_bundle(args.out, args.san, now):
        print(path)
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.admission.pinner import Policy
    from app.admission.service import Admission
    from app.domain import scope
    from app.kube.api import connect
    from app.kube.events import ClusterEvents
    from app.kube.keys import ensure_hmac_key
    from app.kube.sources import ClusterSources
    from app.metrics import Metrics
    from app.web.app import create_app
    from app.web.serve import serve

    _log_to_stderr(settings)
    kubeconfig = args.kubeconfig or settings.kubeconfig
    metrics = Metrics()
    api = RawApi(
        connect(str(kubeconfig) if kubeconfig else None), settings.api_timeout_seconds, metrics
    )
    key_file = args.key_file or settings.hmac_key_file
    if key_file:
        key = _read_key(key_file)
    elif settings.hmac_key_secret and settings.namespace:
        key = ensure_hmac_key(api, settings.namespace, settings.hmac_key_secret)
    else:
        raise SystemExit(
            "configpin: no HMAC key: give --key-file (CONFIGPIN_HMAC_KEY_FILE), or "
            "CONFIGPIN_HMAC_KEY_SECRET with CONFIGPIN_NAMESPACE"
        )
    policy = Policy(
        key=key,
        own_namespace=settings.namespace,
        deployment_failure=settings.deployment_failure,
        pod_failure=settings.pod_failure,
        missing_source=settings.missing_source,
        kinds=settings.workloads(),
        live_sources=scope.LIVE_SOURCE_NAMES | frozenset(scope.parse_live(settings.live_sources)),
        max_sources=settings.max_sources,
        review_seconds=settings.review_deadline_seconds,
    )
    admission = Admission(ClusterSources(api), policy, metrics, ClusterEvents(api))
    cert_file, key_file = _serving_files(args, settings, api)
    ready = threading.Event()
    threading.Thread(target=_wait_for_api, args=(api, ready), daemon=True).start()
    app = create_app(admission, metrics, ready.is_set)
    serve(
        app,
        args.host,
        args.port,
        cert_file,
        key_file,
        settings.log_level,
        settings.tls_reload_seconds,
    )
    return 0


def _controller(args: argparse.Namespace, settings: Settings) -> int:
    """Run the lifecycle controller while this replica holds the Lease; exit when it is
    lost (the Deployment restarts the process, which then follows)."""
    import datetime as dt
    import signal
    import socket

    from prometheus_client import start_http_server

    from app.controller.lifecycle import LifecycleController, Timing
    from app.kube.api import connect
    from app.kube.events import ClusterEvents
    from app.kube.leader import LeaseTimes, lead, run_or_stop
    from app.metrics import ControllerMetrics

    _log_to_stderr(settings)
    if not settings.namespace:
        raise SystemExit("configpin: the controller needs CONFIGPIN_NAMESPACE (its Lease's)")
    kubeconfig = args.kubeconfig or settings.kubeconfig
    api_client = connect(str(kubeconfig) if kubeconfig else None)
    api = RawApi(api_client, settings.api_timeout_seconds)
    metrics = ControllerMetrics()
    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    if port:
        start_http_server(port, registry=metrics.registry)
    controller = LifecycleController(
        api,
        ClusterEvents(api),
        metrics,
        Timing(
            resync_seconds=settings.controller_resync_seconds,
            sweep_grace=dt.timedelta(seconds=settings.sweep_grace_seconds),
            release_settle=dt.timedelta(seconds=settings.release_settle_seconds),
        ),
        own_namespace=settings.namespace,
        workloads=settings.workloads(),
    )
    stop = threading.Event()
    signalled = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        signalled.set()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    rollonchange = _roll_on_change(settings, args, api, metrics)

    def work(stop: threading.Event) -> None:
        metrics.leader.set(1)
        if rollonchange is not None:
            threading.Thread(
                target=run_or_stop,
                args=(rollonchange.run, stop),
                name="roll-on-change",
                daemon=True,
            ).start()
        controller.run(stop)

    times = LeaseTimes(
        duration=settings.lease_duration_seconds,
        renew_deadline=settings.lease_renew_deadline_seconds,
        retry_period=settings.lease_retry_seconds,
    )
    identity = settings.pod_name or socket.gethostname()
    threading.Thread(
        target=lead,
        args=(api_client, settings.namespace, settings.lease_name, identity, times, work, stop),
        name="leader-election",
        daemon=True,
    ).start()
    while not stop.wait(1):
        pass
    return 0 if signalled.is_set() else 1


def _roll_on_change(
    settings: Settings, args: argparse.Namespace, api: RawApi, metrics: "ControllerMetrics"
) -> "RollOnChangeController | None":
    """The roll-on-change loop, run beside the lifecycle one under the same Lease. It names
    content with the webhook's HMAC key: the key file, or the Secret the webhook creates."""
    from app.controller.rollonchange import RollOnChangeController, Timing
    from app.kube.events import ClusterEvents
    from app.kube.keys import read_hmac_key

    key_file = settings.hmac_key_file
    secret, namespace = settings.hmac_key_secret, settings.namespace
    if key_file:
        key = _read_key(key_file)

        def key_source() -> bytes | None:
            return key
    elif secret and namespace:

        def key_source() -> bytes | None:
            return read_hmac_key(api, namespace, secret)
    else:
        log.warning("roll-on-change is off: no HMAC key (CONFIGPIN_HMAC_KEY_FILE or _SECRET)")
        return None
    return RollOnChangeController(
        api,
        ClusterEvents(api),
        metrics,
        key_source,
        settings.workloads(),
        Timing(
            resync_seconds=settings.rollout_resync_seconds,
            debounce_seconds=settings.rollout_debounce_seconds,
            longest_wait_seconds=settings.rollout_longest_wait_seconds,
            namespace_limit=settings.rollout_namespace_limit,
            namespace_window_seconds=settings.rollout_namespace_window_seconds,
        ),
        own_namespace=settings.namespace,
    )


def _release(args: argparse.Namespace, settings: Settings) -> int:
    """Remove configpin's finalizer from every snapshot (the chart's pre-delete hook)."""
    from app.kube.api import connect
    from app.kube.snapshots import release_all

    _log_to_stderr(settings)
    kubeconfig = args.kubeconfig or settings.kubeconfig
    api = RawApi(connect(str(kubeconfig) if kubeconfig else None), settings.api_timeout_seconds)
    if args.webhook_configuration:
        name = args.webhook_configuration
        path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
        try:
            api.request("DELETE", path)
        except ApiError as error:
            if error.status != 404:
                raise
    released = release_all(api)
    print(f"configpin: released {released} snapshot(s)")
    return 0


def _log_to_stderr(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


def _serving_files(args: argparse.Namespace, settings: Settings, api: RawApi) -> tuple[Path, Path]:
    """The certificate and key files to serve: given, or kept current by self-managed TLS."""
    if settings.tls_mode == "files":
        if not (args.cert and args.key):
            raise SystemExit(
                "configpin: serve needs --cert and --key (or CONFIGPIN_TLS_MODE=self-managed)"
            )
        return Path(args.cert), Path(args.key)
    from app.domain.rotation import Lifetimes, service_sans
    from app.kube.selfmanaged import SelfManagedTLS

    if not (settings.namespace and settings.tls_secret and settings.service_name):
        raise SystemExit(
            "configpin: self-managed TLS needs CONFIGPIN_NAMESPACE, CONFIGPIN_TLS_SECRET "
            "and CONFIGPIN_SERVICE_NAME"
        )
    tls = SelfManagedTLS(
        api,
        namespace=settings.namespace,
        secret=settings.tls_secret,
        sans=service_sans(settings.service_name, settings.namespace) + settings.tls_extra_sans,
        cert_dir=settings.cert_dir,
        webhook_configuration=settings.webhook_configuration,
        lifetimes=Lifetimes(ca=settings.tls_ca_validity, serving=settings.tls_serving_validity),
    )
    stop = threading.Event()
    tls.wait_ready(stop)  # uvicorn loads the files once at start: they must exist first
    threading.Thread(
        target=tls.run, args=(stop, settings.tls_check_seconds), name="tls-rotation", daemon=True
    ).start()
    return tls.cert_file, tls.key_file


def _wait_for_api(api: RawApi, ready: threading.Event) -> None:
    """Ready once the API server answers: a replica that cannot read sources would only
    fail its admissions."""
    while True:
        try:
            api.request("GET", "/version")
            ready.set()
            return
        except (ApiError, ApiUnreachableError) as error:
            log.warning("API server not reachable yet: %s", error)
            time.sleep(2)


if __name__ == "__main__":
    raise SystemExit(main())
