"""Runtime settings, from CONFIGPIN_* environment variables (command-line flags win)."""

import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.admission.pinner import OnFailure, OnMissing


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
    log_level: str = "INFO"
    kubeconfig: Path | None = None

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
