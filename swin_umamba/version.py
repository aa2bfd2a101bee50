"""The package's version: pyproject.toml sets it, the installed metadata carries it."""
import importlib.metadata

try:
    __version__ = importlib.metadata.version("swin-umamba")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "unknown (not installed)"
