"""The matchmaker: players' tickets in, matches on allocated game servers out.

- ``models``, ``rules`` (queue rules as data), ``matching`` (the default match function, pure),
  ``functions`` (match functions by name, plug-ins through entry points): deciding matches.
- ``store`` (the ticket-store port), ``tickets`` (Redis, atomic Lua claims), ``push`` (one change
  feed per queue for every waiting client): the tickets.
- ``auth``, ``api``, ``openapi``: the ticket API; ``director``: one loop per queue that claims,
  allocates and assigns; ``app``: the composition of the two.
"""
