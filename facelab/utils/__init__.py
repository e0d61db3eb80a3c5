"""Small shared helpers: registry, device selection, atomic writes, configs."""
