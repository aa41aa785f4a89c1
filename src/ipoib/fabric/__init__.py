"""fabric layer (see ARCHITECTURE.md)."""
