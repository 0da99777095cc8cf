"""The matchmaker (not built yet: issue 4).

It will hold the ticket API (aiohttp), the Redis ticket store with its atomic Lua claim, queue
rules as data, the pure matching function and the director loop that allocates a server for each
match through the allocator. Until then this package is intentionally empty: nothing here is
imported by the running stack, and no placeholder pretends to work.
"""
