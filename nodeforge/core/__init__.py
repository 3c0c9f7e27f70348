"""The core: value types, node declarations, registry, workflow format and engine.

Nothing in this package imports Qt or torch at import time (a test enforces it).
"""
