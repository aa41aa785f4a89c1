"""netdev layer (see ARCHITECTURE.md)."""
