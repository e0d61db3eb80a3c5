"""masks room."""
