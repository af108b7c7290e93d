"""Programs that run beside the CSMS, never inside it: the charger simulator and the load
benchmark. The server packages (csms, stations, accounts, billing) do not import this package
(an import contract of pyproject.toml, run by tests/test_architecture.py), so none of it ships
in or slows the server."""
