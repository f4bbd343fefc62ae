"""Accounts and their API keys: who is calling, and which account their objects belong to."""
