"""Handlers an interceptor wraps, wrapped once each rather than on every call.

grpc.aio asks a server's interceptors for the handler of every call it receives. The handler it
answers with for a method is the same object on each call: the one the service registered, or
the one an interceptor further in put in its place, which is made once per method too
(`remit.grpcutil.errors.ErrorMappingInterceptor`, `remit.grpcutil.internal_auth`). An
interceptor that wraps the handler (to count, track or refuse its calls) keeps what it made for
each handler, so that a call costs a lookup, not a new closure and a new handler.
"""

from collections.abc import Callable
from typing import Any, Final, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

# Far more than the handlers of a server's methods (a few per method: the method's own, a
# refusal per role). Past it, handlers are wrapped on each call as they come, unkept: an
# interceptor further in that made a new handler on each call would otherwise fill the memory.
MAX_KEPT: Final = 4096


class WrappedHandlers:
    """`wrap(handler)` for each handler, made on its first call and kept."""

    def __init__(self, wrap: Callable[[Handler], Handler]) -> None:
        self._wrap = wrap
        # By the handler's id, with the handler itself: kept alive here, no other object can
        # have its id. (Handlers are namedtuples: hashed by their fields, on every call.)
        self._kept: dict[int, tuple[Handler, Handler]] = {}

    def of(self, handler: Handler) -> Handler:
        kept = self._kept.get(id(handler))
        if kept is not None:
            return kept[1]
        wrapped = self._wrap(handler)
        if len(self._kept) < MAX_KEPT:
            self._kept[id(handler)] = (handler, wrapped)
        return wrapped
