"""The installed version of daskgmm."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("daskgmm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"
