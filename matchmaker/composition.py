"""Team composition (pure): role slots filled by the players who offer them, and block lists.

**Roles.** A team with role slots (``teams.roles: {tank: 1, healer: 1, dps: 3}``) is filled by a
bipartite matching, players -> slots: a player may take a slot of any role they offer (a player who
offers none takes any). ``assign_roles`` finds one by augmenting paths (Kuhn's algorithm); teams
hold at most a few hundred players and a handful of roles, so it is a few hundred steps at most.
A smaller team (fewer players than slots, see ``minSize``) must still have every role played once:
the required slots are matched first, then every player is matched with the required slots kept
(an augmenting path never frees a matched slot), which finds an assignment with both whenever one
exists (Mendelsohn-Dulmage).

**Blocks.** ``avoid_sets`` turns who-blocks-whom into, per ticket, the players it must not meet,
in both directions: if A blocks B, B's ticket avoids A and A's ticket avoids B, whoever's ticket is
older. A match is then free of blocks exactly when none of its players is in the avoid set of
another of its tickets.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

RoleOffer = tuple[str, ...]
"""The roles one player offers (empty: any)."""
RoleSlots = tuple[tuple[str, int], ...]
"""A team's role slots as ``(role, count)`` pairs in declared order: hashable, for ``roles_fit``."""


def slots_of(roles: Mapping[str, int]) -> list[str]:
    """Every slot of a team, by role, in the order the roles are declared."""
    return [role for role, count in roles.items() for _ in range(count)]


def assign_roles(
    offers: Sequence[RoleOffer], roles: Mapping[str, int], *, every_role: bool = False
) -> list[str] | None:
    """A role per player (in ``offers`` order), each role taken at most its slot count, or None if
    there is no such assignment. ``every_role``: each role must also be taken at least once."""
    slots = slots_of(roles)
    if len(offers) > len(slots):
        return None
    matching = _Matching(offers, slots)
    if every_role:
        # one required slot per role (its first), matched from the slot side first
        for slot in {role: slots.index(role) for role in roles}.values():
            if not matching.from_slot(slot, [False] * len(offers)):
                return None
    for player in range(len(offers)):
        if matching.taken[player] < 0 and not matching.from_player(player, [False] * len(slots)):
            return None
    return [slots[s] for s in matching.taken]


def roles_fit(offers: Sequence[RoleOffer], slots: RoleSlots, *, every_role: bool = False) -> bool:
    """Whether ``assign_roles`` finds an assignment. That depends only on which offers there are,
    not their order, and a team's few players offer a handful of role sets, so the answer is
    remembered by the sorted offers: the matcher asks it for every candidate of a queue with roles."""
    return _fits(tuple(sorted(offers)), slots, every_role)


@functools.lru_cache(maxsize=16_384)
def assigned_roles(offers: tuple[RoleOffer, ...], slots: RoleSlots, every_role: bool) -> tuple[str, ...] | None:
    """``assign_roles`` remembered by its arguments (offers in player order): the matcher asks it
    once per team of every match of a queue with roles, and teams repeat a few hundred offer lists."""
    got = assign_roles(offers, dict(slots), every_role=every_role)
    return None if got is None else tuple(got)


@functools.lru_cache(maxsize=16_384)
def _fits(offers: tuple[RoleOffer, ...], slots: RoleSlots, every_role: bool) -> bool:
    return assign_roles(offers, dict(slots), every_role=every_role) is not None


class _Matching:
    """Players -> slots, grown by augmenting paths (a matched slot or player stays matched)."""

    def __init__(self, offers: Sequence[RoleOffer], slots: list[str]) -> None:
        self.holder = [-1] * len(slots)  # slot -> player
        self.taken = [-1] * len(offers)  # player -> slot
        self.fits = [[s for s, role in enumerate(slots) if not offer or role in offer] for offer in offers]
        self.takers = [[p for p in range(len(offers)) if s in self.fits[p]] for s in range(len(slots))]

    def from_player(self, player: int, seen: list[bool]) -> bool:
        for slot in self.fits[player]:
            if seen[slot]:
                continue
            seen[slot] = True
            if self.holder[slot] < 0 or self.from_player(self.holder[slot], seen):
                self.holder[slot], self.taken[player] = player, slot
                return True
        return False

    def from_slot(self, slot: int, seen: list[bool]) -> bool:
        """Used while only required slots are matched: a player holding one frees it only if that
        slot finds another player."""
        for player in self.takers[slot]:
            if seen[player]:
                continue
            seen[player] = True
            if self.taken[player] < 0 or self.from_slot(self.taken[player], seen):
                self.holder[slot], self.taken[player] = player, slot
                return True
        return False


def avoid_sets(players: Sequence[Sequence[str]], blocked: Sequence[Sequence[str]]) -> list[frozenset[str]] | None:
    """Per ticket (its player ids, and the players it blocks), the players it must not be matched
    with, both ways round; None when no ticket blocks anybody (the usual case: nothing to check)."""
    if not any(blocked):
        return None
    ticket_of: dict[str, list[int]] = {}
    for t, ids in enumerate(players):
        for pid in ids:
            ticket_of.setdefault(pid, []).append(t)
    avoid: list[set[str]] = [set(b) for b in blocked]
    for t, b in enumerate(blocked):
        for pid in b:
            for other in ticket_of.get(pid, ()):
                avoid[other].update(players[t])  # the blocked player's ticket avoids the blocker
    return [frozenset(a) for a in avoid]
