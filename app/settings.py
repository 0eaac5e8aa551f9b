"""Runtime settings, from CONFIGPIN_* environment variables (command-line flags win)."""

from functools import lru_cache
from pathlib import Path

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
