"""eventstore's REST server (CONTRACT §8): `create_app(store_or_url)` and `serve(url, host, port)`.

Needs the `server` extra: `pip install 'eventstore[server]'`.
"""

from eventstore.server.app import create_app
from eventstore.server.serve import serve

__all__ = ["create_app", "serve"]
