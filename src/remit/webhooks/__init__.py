"""Webhooks: the events outbox, webhook endpoints, and signed delivery with retries.

Other services record events with `remit.webhooks.outbox.record_event` inside their own
transaction; the worker delivers them (`remit.webhooks.delivery`).
"""
