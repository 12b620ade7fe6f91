"""madoguchi-desk."""
