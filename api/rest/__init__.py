"""The Litestar REST application."""

from api.rest.app import create_app

__all__ = ["create_app"]
