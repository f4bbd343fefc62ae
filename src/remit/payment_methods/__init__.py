"""PaymentMethods and card Tokens: the core's view of a card (vault token plus public details)."""
