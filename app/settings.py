"""Runtime settings, from CONFIGPIN_* environment variables (command-line flags win)."""

import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.admission.pinner import OnFailure, OnMissing
from app.domain.workloads import (
    CREATE_AND_UPDATE,
    DEFAULT_CUSTOM,
    Rollbacks,
    WorkloadKind,
    Workloads,
)

# A JSON pointer of one or more segments: /spec/template
_POINTER = r"^(/[^/]+)+$"


class CustomKind(BaseModel):
    """A kind with a pod template that configpin pins on CREATE and UPDATE, like a
    Deployment. The chart lists the same kinds in its webhook rules (`workloads.custom`)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    group: str = Field(min_length=1)
    version: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    resource: str = Field(min_length=1)  # the plural, as in the webhook's rules
    template: str = Field(pattern=_POINTER)
    rollbacks: Rollbacks = Rollbacks.NONE
    revision_hash_label: str | None = None
    template_elsewhere: str | None = Field(default=None, pattern=_POINTER)

    def row(self) -> WorkloadKind:
        return WorkloadKind(
            self.group,
            self.version,
            self.kind,
            self.resource,
            self.template,
            CREATE_AND_UPDATE,
            self.rollbacks,
            revision_hash_label=self.revision_hash_label,
            template_elsewhere=self.template_elsewhere,
        )

    @classmethod
    def of(cls, row: WorkloadKind) -> "CustomKind":
        return cls(
            group=row.group,
            version=row.version,
            kind=row.kind,
            resource=row.resource,
            template=row.template,
            rollbacks=row.rollbacks,
            revision_hash_label=row.revision_hash_label,
            template_elsewhere=row.template_elsewhere,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONFIGPIN_", extra="ignore")

    hmac_key_file: Path | None = None
    # Alternatively a Secret in `namespace` that configpin creates once (key `key`).
    hmac_key_secret: str | None = None
    namespace: str | None = None  # configpin's own namespace, never touched
    deployment_failure: OnFailure = OnFailure.DENY
    pod_failure: OnFailure = OnFailure.ALLOW
    missing_source: OnMissing = OnMissing.WARN
    api_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    # "configmap/NAME,secret/NAME": stay live everywhere, beside the built-in platform names.
    live_sources: str = ""
    max_sources: int = Field(default=100, gt=0)  # distinct sources per review
    # No API call starts after this; with one call's timeout on top it stays inside the
    # webhook's 10 s timeout.
    review_deadline_seconds: float = Field(default=5.0, gt=0, le=9)
    log_level: str = "INFO"
    kubeconfig: Path | None = None
    # CONFIGPIN_CUSTOM_KINDS, JSON: [{"group": "argoproj.io", "version": "v1alpha1", ...}]
    custom_kinds: list[CustomKind] = Field(
        default_factory=lambda: [CustomKind.of(row) for row in DEFAULT_CUSTOM]
    )

    # TLS: `files` serves --cert/--key; `self-managed` keeps a CA and serving certificate in
    # the Secret `tls_secret` of `namespace`, injects the caBundle and renews before expiry.
    tls_mode: Literal["files", "self-managed"] = "files"
    tls_secret: str | None = None
    webhook_configuration: str | None = None  # unset: the caBundle is managed elsewhere
    service_name: str | None = None
    tls_extra_sans: list[str] = Field(default_factory=list)  # e.g. ["127.0.0.1"] for URL mode
    cert_dir: Path = Path("/tmp/tls")  # noqa: S108 - an emptyDir (memory) in the chart
    tls_ca_validity: datetime.timedelta = datetime.timedelta(days=3650)
    tls_serving_validity: datetime.timedelta = datetime.timedelta(days=90)
    tls_check_seconds: float = Field(default=60, gt=0)
    # How often the served files are checked for a new certificate (any TLS mode).
    tls_reload_seconds: float = Field(default=30, gt=0)

    # The lifecycle controller (`configpin controller`).
    controller_resync_seconds: float = Field(default=30, gt=0)
    sweep_grace_seconds: float = Field(default=600, ge=0)  # an orphan is swept once this old
    release_settle_seconds: float = Field(default=30, ge=0)
    lease_name: str = "configpin-controller"
    lease_duration_seconds: int = Field(default=15, ge=2)
    lease_renew_deadline_seconds: int = Field(default=10, ge=2)
    lease_retry_seconds: int = Field(default=2, ge=1)
    pod_name: str | None = None  # the Lease holder's identity (default: the host name)
    metrics_port: int = Field(default=9090, ge=0, le=65535)  # 0: no metrics endpoint

    # Roll on change (in `configpin controller`, for workloads that opt in).
    rollout_resync_seconds: float = Field(default=3, gt=0)  # how often sources are compared
    rollout_debounce_seconds: float = Field(default=5, ge=0)  # edits this close: one rollout
    rollout_longest_wait_seconds: float = Field(default=60, ge=0)  # edits without a pause
    rollout_namespace_limit: int = Field(default=10, ge=1)  # rollouts per namespace...
    rollout_namespace_window_seconds: float = Field(default=60, gt=0)  # ...in this window

    @field_validator("custom_kinds")
    @classmethod
    def _one_row_per_kind(cls, kinds: list[CustomKind]) -> list[CustomKind]:
        Workloads(kind.row() for kind in kinds)  # a kind listed twice is refused at start-up
        return kinds

    def workloads(self) -> Workloads:
        """The table of workload kinds: the built-in rows and `custom_kinds`."""
        return Workloads(kind.row() for kind in self.custom_kinds)


@lru_cache
def get_settings() -> Settings:
    return Settings()
