"""madoguchi-reporting."""
