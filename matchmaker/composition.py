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

from collections.abc import Mapping, Sequence

RoleOffer = tuple[str, ...]
"""The roles one player offers (empty: any)."""


def slots_of(roles: Mapping[str, int]) -> list[str]:
    """Every slot of a team, by role, in the order the roles are declared."""
    return [role for role, count in roles.items() for _ in range(count)]


def assign_roles(offers: Sequence[RoleOffer], roles: Mapping[str, int], *, every_role: bool = False) -> list[str] | None:
    """A role per player (in ``offers`` order), each role taken at most its slot count, or None if
    there is no such assignment. ``every_role``: each role must also be taken at least once."""
    slots = slots_of(roles)
    if len(offers) > len(slots):
        return None
    holder = [-1] * len(slots)  # slot -> player
    taken = [-1] * len(offers)  # player -> slot
    fits = [[s for s, role in enumerate(slots) if not offer or role in offer] for offer in offers]

    def augment_from_player(player: int, seen: list[bool]) -> bool:
        for s in fits[player]:
            if seen[s]:
                continue
            seen[s] = True
            if holder[s] < 0 or augment_from_player(holder[s], seen):
                holder[s], taken[player] = player, s
                return True
        return False

    if every_role:
        # one required slot per role (its first), matched from the slot side first
        firsts = {role: slots.index(role) for role in roles if roles[role]}
        takers = {s: [p for p in range(len(offers)) if s in fits[p]] for s in firsts.values()}

        def augment_from_slot(slot: int, seen: list[bool]) -> bool:
            for player in takers[slot]:
                if seen[player]:
                    continue
                seen[player] = True
                # a player holding another required slot frees it only if that slot finds another
                if taken[player] < 0 or augment_from_slot(taken[player], seen):
                    holder[slot], taken[player] = player, slot
                    return True
            return False

        for slot in firsts.values():
            if not augment_from_slot(slot, [False] * len(offers)):
                return None
    for player in range(len(offers)):
        if taken[player] < 0 and not augment_from_player(player, [False] * len(slots)):
            return None
    return [slots[s] for s in taken]


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
