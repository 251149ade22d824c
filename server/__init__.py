"""Canary's server: the Flask application (telephony and mail webhooks, the investigator
API, the seeding gateway) and the SMTP and DNS listeners, as thin layers over ``canary``.

``create_app`` builds the application; nothing is built at import time. gunicorn runs it
with ``gunicorn 'server:create_app()'`` (``canary serve`` does that for you).
"""

from __future__ import annotations

from server.app import create_app

__all__ = ["create_app"]
