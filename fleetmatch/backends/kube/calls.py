"""kubernetes-asyncio requests with our errors: ``ApiException`` and aiohttp failures stop here.

``call(request, target)`` awaits one request of a kubernetes-asyncio API object and turns a refusal
into the error ``fleetmatch.backends.kube.errors`` maps its ``Status`` to, and a request without an
answer into ``KubeApiError`` with code 0, the original exception chained. ``watch_stream`` is the
kubernetes-asyncio transport of the one watch (``fleetmatch.backends.kube.watch``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from fleetmatch.backends.kube.errors import ApiTarget, api_error, unreachable
from fleetmatch.backends.kube.watch import OpenStream, decode_lines
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


def watch_stream(
    list_call: Callable[..., Awaitable[Any]],
    target: ApiTarget,
    *,
    timeout_seconds: int,
    request_timeout: tuple[float, float],
    **params: Any,
) -> OpenStream:
    """``open_stream`` for ``fleetmatch.backends.kube.watch``: one watch request of ``list_call`` (a
    kubernetes-asyncio list method, with its ``params``) per call, its lines decoded as they come.

    ``_preload_content=False`` hands over the raw response: no typed models are built, and blank
    or broken lines reach ``decode_lines`` instead of the client's own reconnecting ``Watch``.
    ``request_timeout``: seconds to connect, and of silence on the stream before it counts as lost.
    """

    async def open_stream(version: str) -> AsyncIterator[Any]:
        where = target.about(target.name, verb="watch", version=version)
        with mapped_errors(where):
            response = await list_call(
                **params,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=request_timeout,
            )
            try:
                if response.status != 200:
                    raise api_error(response.status, await response.read(), where, http_reason=response.reason or "")
                async for line in decode_lines(response.content):
                    yield line
            finally:
                response.release()

    return open_stream


__all__ = ["TRANSPORT_ERRORS", "call", "mapped_errors", "watch_stream"]
