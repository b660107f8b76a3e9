"""tinyeff: a TinyML deployment kit that measures everything it claims."""

__version__ = "0.1.0"
