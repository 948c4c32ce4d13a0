"""Deterministic code only: the workflows, their models, errors and the backoff maths."""
