"""wsol room."""
