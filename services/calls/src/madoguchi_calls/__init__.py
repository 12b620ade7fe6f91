"""madoguchi-calls."""
