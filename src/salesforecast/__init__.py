"""Weekly sales forecasts for every store and department of a retail chain."""

__version__ = "0.1.0"
