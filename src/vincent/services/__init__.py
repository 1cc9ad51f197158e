"""What the product does: rules, events, positions, secrets, the trade manager."""
