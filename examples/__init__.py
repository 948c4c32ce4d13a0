"""The reference document's Quick Start and Examples 1-3, with ``await`` added.

Run one against a running ``make dev``: ``.venv/bin/python -m examples.example_2_priorities``.
"""
