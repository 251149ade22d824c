"""Telephony and generic webhooks (see the issue "Callbacks"); built in its own commit."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
