"""Programs that run beside the CSMS, never inside it: the charger simulator and the load
benchmark. The server packages (csms, stations, accounts, billing) do not import this package
(tests/test_tools_apart.py), so none of it ships in or slows the server."""
