"""detect room."""
