"""Small checks on raw HTTP answers from the facade."""

from typing import Any

import httpx


def ok(response: httpx.Response) -> Any:
    """The JSON body of a 200 answer (anything else fails the test, showing the body)."""
    assert response.status_code == 200, response.text
    return response.json()
