"""What a FleetAutoscaler wants (pure: numbers and ``now`` in, a decision out).

Buffer policy, as in Agones' ``applyBufferPolicy``:

- integer ``bufferSize`` B: ``desired = allocated + B`` (B Ready servers beyond the Allocated ones);
- percentage ``bufferSize`` P%: P% of the *final* fleet must be non-allocated, so the allocated
  servers are the other (100 - P)% of it: ``desired = ceil(allocated * 100 / (100 - P))``.
  Example: 8 allocated, 30% buffer: 8 is 70% of the fleet, 8 * 100 / 70 = 11.43, so 12;
- then clamp to ``[minReplicas, maxReplicas]`` (``minReplicas`` 0 means no floor beyond 0);
  ``limited`` says the clamp changed the result, i.e. the policy wanted more or fewer.

Only Allocated servers count as allocated. Reserved ones do not (as in Agones): they occupy buffer
slots but never make the fleet grow. Servers being deleted do not count either.

Cool-off (our extension, Agones issue #3826): a scale-down is deferred while
``now - last_scale_time < cooloff``, so a burst that ends does not make the fleet shrink and grow
again; a scale-up is never delayed (a player waiting for a server is worse than a spare server).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from fleetmatch.models import BufferPolicy, GameServer, GameServerState


class Decision(StrEnum):
    UP = "up"
    DOWN = "down"
    HOLD = "hold"
    """The fleet already has the replicas the policy asks for."""
    COOLOFF = "cooloff"
    """The policy asks for fewer replicas, but the last scaling was too recent."""


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    replicas: int
    """What the fleet's ``spec.replicas`` should be now (``current`` unless up or down)."""
    desired: int
    """What the policy asks for, clamped; differs from ``replicas`` only during a cool-off."""
    limited: bool
    """The policy's wish was clamped to ``minReplicas``/``maxReplicas``."""
    decision: Decision


def _percent(value: str) -> int:
    return int(value.removesuffix("%"))


def buffer_replicas(policy: BufferPolicy, allocated: int) -> tuple[int, bool]:
    """``(desired replicas, limited)`` for ``allocated`` Allocated servers (see the module docstring)."""
    if allocated < 0:
        raise ValueError(f"allocated must not be negative, got {allocated}")
    if isinstance(policy.buffer_size, int):
        wanted = allocated + policy.buffer_size
    else:
        free_share = 100 - _percent(policy.buffer_size)  # 1..99, enforced by BufferPolicy
        wanted = -(-allocated * 100 // free_share)  # integer ceil: no float rounding at any size
    clamped = min(max(wanted, policy.min_replicas), policy.max_replicas)
    return clamped, clamped != wanted


def decide(
    policy: BufferPolicy,
    *,
    current: int,
    allocated: int,
    now: float,
    last_scale_time: float | None,
    cooloff: float,
) -> ScaleDecision:
    """Compare the policy's wish with the fleet's ``current`` ``spec.replicas``."""
    desired, limited = buffer_replicas(policy, allocated)
    if desired > current:
        return ScaleDecision(desired, desired, limited, Decision.UP)
    if desired == current:
        return ScaleDecision(current, desired, limited, Decision.HOLD)
    if last_scale_time is not None and now - last_scale_time < cooloff:
        return ScaleDecision(current, desired, limited, Decision.COOLOFF)
    return ScaleDecision(desired, desired, limited, Decision.DOWN)


def allocated_fleet(gs: GameServer) -> str | None:
    """The fleet whose allocated count ``gs`` adds to, or None (not Allocated, being deleted, or no fleet)."""
    if gs.state is not GameServerState.ALLOCATED or gs.metadata.deletion_timestamp is not None:
        return None
    return gs.fleet


def allocated_per_fleet(servers: Iterable[GameServer]) -> Counter[str]:
    """Allocated servers per fleet name, counted as ``allocated_fleet`` does."""
    return Counter(fleet for gs in servers if (fleet := allocated_fleet(gs)) is not None)


__all__ = ["Decision", "ScaleDecision", "allocated_fleet", "allocated_per_fleet", "buffer_replicas", "decide"]
