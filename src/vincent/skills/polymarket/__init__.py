"""skills/polymarket."""
