"""Audit: the TransactionLog, one row per skill action, updated to its final status."""
