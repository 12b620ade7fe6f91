"""Madoguchi web console."""
