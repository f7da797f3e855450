"""slidescout: an agent that reads gigapixel pathology slides the way a pathologist does."""

__version__ = "0.1.0"
