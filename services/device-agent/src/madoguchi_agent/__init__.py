"""madoguchi-device-agent."""
