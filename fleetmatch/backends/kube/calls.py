"""kubernetes-asyncio requests with our errors: ``ApiException`` and aiohttp failures stop here.

``call(request, target)`` awaits one request of a kubernetes-asyncio API object and turns a refusal
into the error ``fleetmatch.backends.kube.errors`` maps its ``Status`` to, and a request without an
answer into ``KubeApiError`` with code 0, the original exception chained.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from fleetmatch.backends.kube.errors import ApiTarget, api_error, unreachable
from fleetmatch.tasks import raise_if_cancelling

T = TypeVar("T")

TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
"""What a request that got no answer raises under kubernetes-asyncio."""


@contextlib.contextmanager
def mapped_errors(target: ApiTarget) -> Iterator[None]:
    """Inside the block, kubernetes-asyncio and aiohttp failures become our errors."""
    try:
        yield
    except ApiException as exc:
        raise api_error(exc.status or 0, exc.body, target, http_reason=str(exc.reason or "")) from exc
    except TRANSPORT_ERRORS as exc:
        raise_if_cancelling()
        raise unreachable(exc, target) from exc


async def call(request: Awaitable[T], target: ApiTarget) -> T:
    """The result of ``request``; our error if the API server refused it or could not be reached."""
    with mapped_errors(target):
        return await request


__all__ = ["TRANSPORT_ERRORS", "call", "mapped_errors"]
