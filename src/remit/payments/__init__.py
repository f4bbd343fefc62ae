"""Payments: PaymentIntents, their charges and refunds, and the state machine that drives them."""
