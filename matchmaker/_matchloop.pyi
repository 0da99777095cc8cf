"""The default match function's inner loop in C (``matchmaker/_matchloop.c``): see matchmaker.matching."""

from collections.abc import Mapping
from typing import Any

from matchmaker.models import MatchQuality, Proposal

PACK_BUDGET: int
MAX_REGIONS: int

def by_age(rows: list[tuple[Any, ...]], now: float, /) -> list[tuple[Any, ...]] | None: ...

class Loop:
    """One tick's tickets (numbered by age) and sorted indexes."""

    def __init__(
        self,
        sizes: list[int],
        keys: list[float],
        strengths: list[float],
        ok: list[bool],
        latencies: list[Mapping[str, float]] | None,
        regions: list[str],
    ) -> None: ...
    def add_index(self, members: list[int], /) -> int: ...
    def take(self, ticket: int, /) -> None: ...
    def walk(self, seed: int, low: float, high: float, scan: int, /) -> list[int]: ...
    def select_from(
        self,
        seed: int,
        candidates: list[int],
        cap: int,
        count: int,
        mask: int,
        spread: float,
        check_latency: bool,
        window: float,
        /,
    ) -> tuple[list[int], int, bool, int]: ...
    def teams(
        self, chosen: list[int], size: int, count: int, balance: bool, /
    ) -> tuple[list[list[int]], list[float]]: ...
    def usable(self, ticket: int, window: float, /) -> int: ...
    def region(self, chosen: list[int], mask: int, /) -> tuple[int, int]: ...
    def configure(
        self,
        now: float,
        enqueued: list[float],
        ok: list[bool],
        distance: tuple[float, float, float, tuple[tuple[float, float], ...]] | None,
        latency: tuple[float, float, float, tuple[tuple[float, float], ...]] | None,
        cap: int,
        count: int,
        scan: int,
        smallest: int,
        wait_for_full: float,
        /,
    ) -> None: ...
    def next(self, start: int, /) -> tuple[int, list[int], int, int, bool, list[int], int] | None: ...
    def set_blocks(self, avoid: list[tuple[int, ...]], ids: list[tuple[int, ...]], /) -> None: ...
    def set_roles(
        self,
        offers: list[tuple[tuple[str, ...], ...]],
        pids: list[tuple[str, ...]],
        roles: list[tuple[tuple[str, int], ...]],
        caps: list[int],
        named: bool,
        max_size: int,
        /,
    ) -> None: ...
    def placed_teams(
        self, chosen: list[int], balance: bool, size: int, /
    ) -> tuple[list[list[int]], list[float], dict[str, str]]: ...
    def set_proposals(
        self,
        ids: list[str],
        latencies: list[Mapping[str, float]] | None,
        regions: list[str],
        team_names: tuple[str, ...],
        balance: bool,
        proposal: type[Proposal],
        quality: type[MatchQuality],
        /,
    ) -> None: ...
    def propose(self, chosen: list[int], size: int, mask: int, /) -> Proposal: ...
