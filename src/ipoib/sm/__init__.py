"""sm layer (see ARCHITECTURE.md)."""
