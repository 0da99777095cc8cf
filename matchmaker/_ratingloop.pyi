"""A rating queue's team balance and prediction in C (``matchmaker/_ratingloop.c``): see
matchmaker.ratings.balance."""

from collections.abc import Callable, Sequence

from matchmaker.ratings import Rating

def balance(
    parties: Sequence[Sequence[Rating]],
    greedy: Sequence[Sequence[int]],
    size: int,
    brute_force: int,
    spread: float,
    margin_of: Callable[[int], float],
    /,
) -> tuple[list[list[int]], tuple[float, ...], float] | None: ...
