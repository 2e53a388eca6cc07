"""Helpers every layer may use. This package imports nothing of Lookalike's own, so any
module can depend on it without creating a cycle (an import-linter contract keeps it so)."""
