"""A Deployment's label selector as the `labelSelector` query the API server takes."""

import re
from collections.abc import Mapping
from typing import Any

from app.domain.labels import is_label_value

# A label key: an optional prefix, a DNS subdomain of at most 253 characters, then a name of
# at most 63.
_KEY = re.compile(
    r"^((?=[^/]{1,253}/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_SET_OPERATORS = {"In": "in", "NotIn": "notin"}


def label_selector(selector: Any) -> str | None:
    """`matchLabels` and `matchExpressions` in the query syntax; None when the selector is
    empty or not one the API server would accept (then nothing can match it)."""
    if not isinstance(selector, Mapping):
        return None
    terms: list[str] = []
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        return None
    for key, value in sorted(match_labels.items()):
        if not _is_key(key) or not isinstance(value, str) or not is_label_value(value):
            return None
        terms.append(f"{key}={value}")
    for expression in expressions:
        term = _expression(expression)
        if term is None:
            return None
        terms.append(term)
    return ",".join(terms) or None


def _expression(expression: Any) -> str | None:
    if not isinstance(expression, Mapping) or not _is_key(expression.get("key")):
        return None
    key, operator, values = expression["key"], expression.get("operator"), expression.get("values")
    if operator in ("Exists", "DoesNotExist"):
        return key if operator == "Exists" else f"!{key}"
    if operator not in _SET_OPERATORS or not isinstance(values, list) or not values:
        return None
    if not all(isinstance(v, str) and is_label_value(v) for v in values):
        return None
    return f"{key} {_SET_OPERATORS[operator]} ({','.join(values)})"


def _is_key(key: Any) -> bool:
    return isinstance(key, str) and _KEY.match(key) is not None
