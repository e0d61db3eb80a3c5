"""align room."""
