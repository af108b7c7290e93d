"""REST API v1 of accounts: ID tokens, card imports, local lists, memberships and the audit log;
the permission classes the other apps' APIs share."""
