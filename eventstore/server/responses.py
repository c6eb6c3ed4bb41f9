"""The JSON response every route returns, rendered the way eventstore stores values."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class JSONBody(JSONResponse):
    """JSON with non-ASCII escaped: a string value may hold a lone surrogate (values keep any
    character), which has no UTF-8 form and would make `ensure_ascii=False` fail while rendering."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
