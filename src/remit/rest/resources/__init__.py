"""One module per Stripe resource: its parameter schemas and handlers."""
