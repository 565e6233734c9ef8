"""Silence fd 2 for a while: what native libraries (TensorFlow's C++ logging) write there directly."""
import os
import sys


class stderr_silenced:
    """Native libraries (TensorFlow's C++ logging) write to fd 2 directly: point it at /dev/null
    while the model is read, so bad input still gets exactly one line."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        return False

