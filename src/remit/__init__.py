"""remit: a self-hostable payments platform with a Stripe-compatible REST facade."""

__version__ = "0.1.0"
