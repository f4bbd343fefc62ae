"""uvicorn's HTTP protocol (httptools), refusing a request it cannot parse in Stripe's shape.

The parser refuses what HTTP does not allow before the app sees the request: a control
character in a header value (an Idempotency-Key with a NUL or an ESC in it), a malformed request
line. uvicorn answers those with a plain-text 400, which no Stripe client can read: stripe-python
raises a bare APIError ("Invalid response body from API") in place of the InvalidRequestError
every other refusal is. Here the same 400 carries Stripe's error object.
"""

import json
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from remit.core.ids import new_id

_MESSAGE: Final = (
    "The request could not be read as HTTP: a header holds a character HTTP does not allow "
    "(a control character, for instance), or the request is otherwise malformed."
)
_BODY: Final = json.dumps(
    {"error": {"type": "invalid_request_error", "message": _MESSAGE}}, separators=(",", ":")
).encode()


class StripeShapedHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(_BODY)).encode("ascii") + b"\r\n",
                b"request-id: " + new_id("req").encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
            ]
        )
        self.transport.write(b"".join(head) + _BODY)
        self.transport.close()
