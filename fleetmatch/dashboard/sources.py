"""Where the dashboard reads what the informers do not carry: the matchmaker's queue statistics
(its ticket API, ``GET /v1/queues`` with an operator API key) and the allocator's counters (this
process's Prometheus registry in ``fleetmatch up``, a scraped ``/metrics`` standalone).

Every read is bounded by a timeout and turns a failure into ``SourceError`` (the page then says
what is missing instead of the process failing); the hub calls them from one loop for all
browsers, never once per browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from fleetmatch.dashboard.views import ALLOCATION_RESULTS, Sample
from fleetmatch.errors import FleetmatchError

TIMEOUT = 3.0
"""Seconds one read may take."""


class SourceError(FleetmatchError):
    """A source did not answer, or answered something unusable; the message is shown on the page."""


class QueueSource(Protocol):
    async def queues(self) -> list[Mapping[str, Any]]:
        """The ``GET /v1/queues`` items; ``SourceError`` when they cannot be had."""


class MetricSource(Protocol):
    async def samples(self) -> list[Sample]:
        """The allocation counters' samples; ``SourceError`` when they cannot be had."""


class TicketApiQueues:
    """The queues of a ticket API, read with an operator API key (sent as a bearer token)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, api_key: str) -> None:
        self._session = session
        self._url = url.rstrip("/") + "/v1/queues"
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def queues(self) -> list[Mapping[str, Any]]:
        try:
            async with asyncio.timeout(TIMEOUT), self._session.get(self._url, headers=self._headers) as response:
                if response.status != 200:
                    raise SourceError(f"the ticket API answered {response.status} to GET /v1/queues")
                doc = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SourceError(f"the ticket API did not answer: {exc or type(exc).__name__}") from exc
        items = doc.get("items") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise SourceError("the ticket API's GET /v1/queues has no items")
        return [i for i in items if isinstance(i, dict)]


class NoQueues:
    """No ticket API configured: the panel says so."""

    def __init__(self, why: str) -> None:
        self._why = why

    async def queues(self) -> list[Mapping[str, Any]]:
        raise SourceError(self._why)


class RegistryMetrics:
    """This process's registry (``fleetmatch up``: the allocator runs here)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._registry = registry

    async def samples(self) -> list[Sample]:
        only = self._registry.restricted_registry([ALLOCATION_RESULTS])  # not every histogram, every second
        return [
            Sample(s.name, s.labels, s.value)
            for family in only.collect()
            for s in family.samples
            if s.name == ALLOCATION_RESULTS
        ]


class ScrapedMetrics:
    """An allocator's ``/metrics`` (``fleetmatch dashboard`` beside a deployment)."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url

    async def samples(self) -> list[Sample]:
        try:
            async with asyncio.timeout(TIMEOUT), self._session.get(self._url) as response:
                if response.status != 200:
                    raise SourceError(f"{self._url} answered {response.status}")
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceError(f"{self._url} did not answer: {exc or type(exc).__name__}") from exc
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            raise SourceError(f"{self._url}: not Prometheus text: {exc}") from exc
        return [Sample(s.name, s.labels, s.value) for f in families for s in f.samples if s.name == ALLOCATION_RESULTS]


class NoMetrics:
    async def samples(self) -> list[Sample]:
        raise SourceError("no metrics URL configured (FLEETMATCH_DASHBOARD_METRICS_URL)")
