"""Madoguchi simulator."""
