"""PixelKiln daemon: hosts fast image models and streams results to game engines."""

__version__ = "0.1.0"
