"""Pages for cards, card imports, local lists, the audit log and memberships."""
