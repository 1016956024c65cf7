"""retake: instruction-based video editing (data, training, editing, evaluation)."""

__version__ = "0.1.0"
