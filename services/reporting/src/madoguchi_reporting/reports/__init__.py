"""The reports as typed models, built from the statistics tables (REP-1 … REP-4)."""
