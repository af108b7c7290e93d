"""REST API v1 of the charging network: stations, transactions, meter samples and commands."""
