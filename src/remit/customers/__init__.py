"""Customers: the minimal Stripe Customer, enough to attach and list payment methods."""
