"""The HTTP API (FastAPI): ``create_app()``; served by ``mlledger serve``."""

from registry.api.app import create_app

__all__ = ["create_app"]
