"""Canary: data-leak canaries and honeytoken tracing for lists of people."""

__version__ = "0.1.0"
