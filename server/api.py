"""The investigator API and the seeding gateway (see the issue "Callbacks"); built in its
own commit."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")
