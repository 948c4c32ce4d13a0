"""Compatibility package: code written against the original orchestrator imports from here."""
