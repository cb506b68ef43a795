"""Nexus: a self-hosted business operating system."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nexus-os")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"
