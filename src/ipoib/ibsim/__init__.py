"""ibsim layer (see ARCHITECTURE.md)."""
