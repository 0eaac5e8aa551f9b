"""The label, annotation and value names that make configpin's contract."""

import functools
import re

INJECT = "configpin.io/inject"  # label on namespaces ("enabled"); annotation opt-out ("false")
INJECT_ENABLED = "enabled"
INJECT_DISABLED = "false"
LIVE = "configpin.io/live"
PINS = "configpin.io/pins"

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "configpin"
DIGEST = "configpin.io/digest"
SOURCE = "configpin.io/source"
SOURCE_NAME = "configpin.io/source-name"
SOURCE_UID = "configpin.io/source-uid"
SOURCE_RESOURCE_VERSION = "configpin.io/source-resource-version"
# Finalizer on every snapshot: released once nothing may run with it (app/domain/lifecycle.py).
IN_USE_FINALIZER = "configpin.io/in-use"

# Selects snapshots and nothing else configpin makes (the HMAC key and TLS Secrets carry
# the managed-by label only): `kubectl get cm,secret -l <this>`.
SNAPSHOT_SELECTOR = f"{MANAGED_BY}={MANAGER},{DIGEST}"

NEVER_TOUCHED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_object_name(value: str) -> bool:
    """A valid ConfigMap or Secret name (a DNS subdomain)."""
    return len(value) <= 253 and _is_dns_subdomain(value)


# Every Pod review checks the same few names: remembered, at most 4,096 of them, each at most
# 253 characters long (checked first), so about a megabyte at worst.
@functools.lru_cache(maxsize=4096)
def _is_dns_subdomain(value: str) -> bool:
    return _DNS_SUBDOMAIN.match(value) is not None


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and _LABEL_VALUE.match(value) is not None
