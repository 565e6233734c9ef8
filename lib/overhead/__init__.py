"""overhead: measure framework overhead of CPU inference against a NumPy engine."""

__version__ = "0.1.0"
