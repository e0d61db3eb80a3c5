"""video room."""
