"""landmarks room."""
