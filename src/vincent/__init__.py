"""Vincent Trade Manager: automated exit rules on Polymarket positions."""

__version__ = "0.1.0"
