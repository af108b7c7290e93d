"""Tariffs, costs and invoices: see the billing issue; nothing is modelled here yet."""
