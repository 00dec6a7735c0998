"""tracetui: chat with a local model and see which parts of its reply occur verbatim in your corpus."""

__version__ = "0.1.0"
