"""merge room."""
