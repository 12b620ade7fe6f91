"""The desk edge: the desk's command handling on its laptop, working through a lost link (EDGE.md)."""
