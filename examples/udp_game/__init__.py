"""The example UDP game: a dedicated server players can really talk to (``server``), its wire
protocol (``protocol``), its pure match rules (``game``) and a client (``client``)."""
