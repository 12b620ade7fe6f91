"""madoguchi-audit."""
