"""Reading a request body no larger than a limit, without holding more of it than that.

Starlette's `Request.body()` reads the whole body into memory before anyone can look at its
size, so one request with a body of gigabytes (from anyone who reaches the 3-D Secure pages, or
with a publishable key, which every payment page shows) would take the api process's memory.
Here a declared `Content-Length` over the limit is refused before a byte is read, and a body
sent in chunks is refused as soon as it passes the limit.
"""

from starlette.requests import Request


class BodyTooLargeError(ValueError):
    """The request's body is larger than the limit (what was read of it is dropped)."""


async def capped_body(request: Request, limit: int) -> bytes:
    """The body of `request`, or BodyTooLargeError once it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"The request body is larger than {limit} bytes.")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"The request body is larger than {limit} bytes.")
        parts.append(chunk)
    return b"".join(parts)
