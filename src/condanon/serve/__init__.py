"""``condanon serve``: anonymise and analyse over HTTP, run jobs on videos and folders, and review the results.

Needs the ``serve`` extra (``pip install "condanon[serve]"``: FastAPI, uvicorn, python-multipart)::

    from condanon.serve import ServeConfig, create_app
    app = create_app(ServeConfig(api_keys=("a-long-random-key-0123",)))   # an ASGI app: uvicorn, or a test client

docs/serve.md describes the endpoints, the limits and running it behind a TLS proxy. `ServeConfig` imports without
the extra; `create_app` needs it.
"""

from typing import TYPE_CHECKING, Any

from .config import ServeConfig

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # FastAPI is imported only when the app is made
        from .app import create_app

        return create_app
    raise AttributeError(name)
