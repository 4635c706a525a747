"""mq-cutover: the domain logic shared by every Lambda handler (shipped as a layer)."""

__version__ = "0.1.0"
