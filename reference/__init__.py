"""shakyo reference."""
