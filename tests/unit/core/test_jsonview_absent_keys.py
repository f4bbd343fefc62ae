"""Fields Stripe's JSON leaves out, key and all, when they have no value (not null)."""

from typing import Any

from remit.core.jsonview import to_json
from remit.versioning.openapi import document
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from versions import LATEST_VERSION


def test_a_webhook_endpoint_has_a_secret_key_only_when_it_carries_the_secret() -> None:
    # Stripe shows the secret in the answer of the create alone; elsewhere the key is absent.
    shown = to_json(pb.WebhookEndpoint(id="we_1", secret="whsec_x"))
    assert shown["secret"] == "whsec_x"
    unset = to_json(pb.WebhookEndpoint(id="we_1"))
    assert "secret" not in unset
    # The other optional fields still render null when unset.
    assert unset["description"] is None
    # The keys keep the order of the fields.
    assert list(shown).index("secret") == list(unset).index("status")


def test_the_openapi_document_says_the_secret_is_a_string_never_null() -> None:
    components: Any = document(LATEST_VERSION)["components"]
    endpoint = components["schemas"]["webhook_endpoint"]
    assert endpoint["properties"]["secret"] == {"type": "string"}
    assert "secret" not in endpoint.get("required", [])
