"""Kubernetes naming rules, so that every object fleetmatch stores is also valid on Kubernetes."""

from __future__ import annotations

import functools
import re
import secrets

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet


def object_name_error(name: str) -> str | None:
    """Why ``name`` is not a valid object name (DNS-1123 subdomain), or None."""
    if not name:
        return "must not be empty"
    if len(name) > 253:
        return "must be at most 253 characters"
    if not _DNS1123_SUBDOMAIN.match(name):
        return "must consist of lower case letters, digits, '-' or '.', and start and end with a letter or digit"
    return None


def namespace_error(name: str) -> str | None:
    if not name or len(name) > 63 or not _DNS1123_LABEL.match(name):
        return (
            "must be a DNS-1123 label: at most 63 lower case letters, digits or '-', starting and ending alphanumeric"
        )
    return None


@functools.lru_cache(maxsize=4096)
def qualified_name_error(key: str) -> str | None:
    """Why ``key`` is not a valid label/annotation key (``[prefix/]name``), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "prefix part must not be empty"
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            return "prefix part must be a DNS-1123 subdomain"
    if not name:
        return "name part must not be empty"
    if len(name) > 63:
        return "name part must be at most 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be at most 63 characters"
    if not _LABEL_VALUE.match(value):
        return (
            "must be empty or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def generate_name(prefix: str) -> str:
    """``prefix`` plus five random characters, as Kubernetes does for ``generateName``."""
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
