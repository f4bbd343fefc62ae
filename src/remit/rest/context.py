"""What a REST handler receives: the caller, the parsed parameters, and request metadata."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from remit.accounts.domain import KeyKind, Principal
from remit.core.text_limits import cut_short
from remit.grpcutil.metadata import (
    KEY_ID_KEY,
    KEY_KIND_KEY,
    PUBLISHABLE_KEY_KIND,
    REQUEST_PATH_KEY,
)


@dataclass(frozen=True)
class ApiContext:
    principal: Principal
    request_id: str
    idempotency_key: str | None
    api_version: str
    # The account's pinned version; differs from `api_version` when Stripe-Version overrides.
    account_api_version: str
    params: Mapping[str, object]
    path: Mapping[str, str]
    # Headers the handler adds to the response (e.g. Idempotent-Replayed).
    response_headers: dict[str, str] = field(default_factory=dict)
    # The URL path as the core is told it (`request_path_for_core`); empty when unknown.
    request_path: str = ""

    @property
    def expand(self) -> list[str]:
        return self.str_list("expand")

    def int_param(self, name: str) -> int:
        """A parameter the schema requires and parses as an integer."""
        value = self.optional_int(name)
        if value is None:
            raise TypeError(f"{name} was not parsed as an integer")
        return value

    def str_param(self, name: str) -> str:
        """A parameter the schema requires and parses as a string."""
        value = self.optional_str(name)
        if value is None:
            raise TypeError(f"{name} was not parsed as a string")
        return value

    def optional_str(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if isinstance(value, str) else None

    def optional_int(self, name: str) -> int | None:
        value = self.params.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def optional_bool(self, name: str) -> bool | None:
        value = self.params.get(name)
        return value if isinstance(value, bool) else None

    def new_metadata(self) -> dict[str, str]:
        """`metadata` of a create: an empty value names a key to unset, and a new object has
        none to unset, so the key is left out, as Stripe leaves it out."""
        return {key: value for key, value in self.str_map("metadata").items() if value != ""}

    def str_map(self, name: str) -> dict[str, str]:
        """A str-to-str object parameter such as `metadata`; empty when absent or unset."""
        value = self.params.get(name)
        if not isinstance(value, dict):
            return {}
        return {str(k): str(v) for k, v in value.items()}

    def str_list(self, name: str) -> list[str]:
        value = self.params.get(name)
        return [str(item) for item in value] if isinstance(value, list) else []

    def grpc_metadata(self) -> tuple[tuple[str, str], ...]:
        """Who is asking and on whose behalf, for the core services."""
        metadata = [
            ("remit-account-id", self.principal.account_id),
            ("remit-request-id", self.request_id),
            ("remit-api-version", self.api_version),
            (KEY_ID_KEY, self.principal.key_id),
        ]
        if self.idempotency_key is not None:
            metadata.append(("idempotency-key", self.idempotency_key))
        if self.principal.key_kind is KeyKind.PUBLISHABLE:
            metadata.append((KEY_KIND_KEY, PUBLISHABLE_KEY_KIND))
        if self.request_path:
            metadata.append((REQUEST_PATH_KEY, self.request_path))
        return tuple(metadata)


# The longest path told to the core: enough for any real id, and small enough for gRPC's
# metadata limit, which a request to a made-up id thousands of characters long would pass.
MAX_REQUEST_PATH = 500


def request_path_for_core(path: str) -> str:
    """The request's URL path as gRPC metadata can carry it (printable ASCII): what is not is
    percent-encoded again, as the client sent it; cut short past `MAX_REQUEST_PATH`."""
    encoded = quote(path, safe="/:@!$&'()*+,;=-._~")
    return cut_short(encoded, MAX_REQUEST_PATH)
