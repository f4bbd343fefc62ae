"""Stripe-compatible REST facade: wire-format primitives and the HTTP surface."""
