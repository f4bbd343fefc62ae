"""Where a cardholder goes once a redirect (the 3-D Secure page) is done with them."""


def return_to(return_url: str, intent_id: str, client_secret: str) -> str:
    """Stripe's way back: the merchant's return_url with the intent and its client secret
    appended, which the merchant's page needs to look up how the payment ended."""
    joiner = "&" if "?" in return_url else "?"
    return (
        f"{return_url}{joiner}payment_intent={intent_id}"
        f"&payment_intent_client_secret={client_secret}"
    )
