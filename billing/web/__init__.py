"""Billing pages under /billing/: tariffs, session costs, invoices, revenue and exports."""
