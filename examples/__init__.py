"""Game servers that use the fleetmatch SDK; run each from the repository root
(``python -m examples.<name>.server``)."""
