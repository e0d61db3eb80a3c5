"""Swap models behind one registry."""
