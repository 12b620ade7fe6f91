"""Madoguchi shared contracts: events, subjects, bus, settings, logging, identity, PII guard."""

__version__ = "0.1.0"
