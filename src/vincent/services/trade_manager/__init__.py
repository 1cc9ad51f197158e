"""services/trade_manager."""
