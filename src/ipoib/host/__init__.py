"""host layer (see ARCHITECTURE.md)."""
