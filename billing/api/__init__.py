"""REST API v1 of billing under /api/v1/billing/."""
