from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from remit.storage.schema import core_metadata

payment_intents = Table(
    "payment_intents",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("capture_method", Text, nullable=False),
    Column("confirmation_method", Text, nullable=False),
    Column("client_secret", Text, nullable=False),
    Column("customer_id", Text, nullable=True),
    Column("payment_method_id", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("receipt_email", Text, nullable=True),
    Column("statement_descriptor", Text, nullable=True),
    Column("statement_descriptor_suffix", Text, nullable=True),
    Column("setup_future_usage", Text, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("amount_capturable_minor", BigInteger, nullable=False),
    Column("amount_received_minor", BigInteger, nullable=False),
    Column("latest_charge_id", Text, nullable=True),
    Column("cancellation_reason", Text, nullable=True),
    Column("canceled_at", DateTime(timezone=True), nullable=True),
    Column("last_payment_error", JSONB, nullable=True),
    Column("next_action", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("return_url", Text, nullable=True),
    Column("review_id", Text, nullable=True),
    Column("shipping", JSONB, nullable=True),
    # Stripe's automatic_payment_methods object, and the merchant's lists of allowed and
    # excluded payment method types (JSON arrays); null when not given.
    Column("automatic_payment_methods", JSONB, nullable=True),
    Column("allowed_payment_method_types", JSONB, nullable=True),
    Column("excluded_payment_method_types", JSONB, nullable=True),
    # payment_method_options.card.request_three_d_secure; null when never given.
    Column("request_three_d_secure", Text, nullable=True),
    # Lists are newest first within an account; the id breaks ties between equal timestamps.
    Index("ix_payment_intents_account_created", "account_id", "created_at", "id"),
)

charges = Table(
    "charges",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("payment_intent_id", Text, ForeignKey("payment_intents.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("amount_captured_minor", BigInteger, nullable=False),
    Column("amount_refunded_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    # pending while the network is asked; succeeded or failed once it answered.
    Column("status", Text, nullable=False),
    Column("captured", Boolean, nullable=False),
    Column("capture_requested", Boolean, nullable=False),
    # Released uncaptured: canceled or expired while only authorized.
    Column("authorization_released", Boolean, nullable=False, server_default=text("false")),
    Column("payment_method_id", Text, nullable=False),
    Column("customer_id", Text, nullable=True),
    Column("card", JSONB, nullable=False),
    Column("outcome", JSONB, nullable=True),
    Column("failure_code", Text, nullable=True),
    Column("failure_message", Text, nullable=True),
    Column("decline_code", Text, nullable=True),
    Column("authorization_id", Text, nullable=True),
    # When the network authorized the charge: its authorization expires 7 days after. Null for
    # a charge never authorized, and for one authorized before core migration 0067.
    Column("authorized_at", DateTime(timezone=True), nullable=True),
    # The network's raw answer, kept from the moment it arrives (recovery point
    # authorization_done) until it is applied to the intent.
    Column("network_result", JSONB, nullable=True),
    # What a capture in progress asked for, so a resumed capture asks for the same.
    Column("requested_capture_minor", BigInteger, nullable=True),
    # How many captures have been asked of the network: each has its own reference
    # (remit.payments.charges.capture_reference). Core migration 0052 counts 1 for the charges
    # made before it; a capture an earlier process asks for since is not counted here but
    # known by requested_capture_minor (Charge.captures_asked).
    Column("capture_attempts", Integer, nullable=False, server_default=text("0")),
    # What else it asked to change (metadata, statement descriptors), applied when it succeeds.
    Column("requested_capture_changes", JSONB, nullable=True),
    Column("description", Text, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Radar's verdict, stored before it is acted on; the attempt's 3-D Secure state.
    Column("risk", JSONB, nullable=True),
    Column("authentication", JSONB, nullable=True),
    Column("review_id", Text, nullable=True),
    # The charge's balance transaction (txn_), chosen when it is captured.
    Column("balance_transaction_id", Text, nullable=True),
    # Copied from the payment method and the intent when the charge is made (see
    # remit.payments.charges.Charge), written once with the row.
    Column("billing_details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("receipt_email", Text, nullable=True),
    Column("statement_descriptor", Text, nullable=True),
    Column("statement_descriptor_suffix", Text, nullable=True),
    Column("shipping", JSONB, nullable=True),
    # The dispute (dp_) opened against the charge, set once (core migration 0084).
    Column("dispute_id", Text, nullable=True),
    Index("ix_charges_account_created", "account_id", "created_at", "id"),
    Index("ix_charges_payment_intent_id", "payment_intent_id"),
    # The charges of a payment method whose card fingerprint the conversion rewrites
    # (`remit.payments.charge_fingerprints`, core migration 0090).
    Index("ix_charges_payment_method", "payment_method_id"),
)

refunds = Table(
    "refunds",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("charge_id", Text, ForeignKey("charges.id"), nullable=False),
    Column("payment_intent_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("acquirer_refund_id", Text, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The refund's balance transaction (txn_), chosen when it is created (core migration 0041;
    # before, when it succeeded).
    Column("balance_transaction_id", Text, nullable=True),
    # The refunded charge's customer and payment method, copied when the refund is made.
    Column("customer_id", Text, nullable=True),
    Column("payment_method_id", Text, nullable=True),
    # The refund_failure balance transaction (txn_) of a refund that failed or was canceled
    # after it debited the balance.
    Column("failure_balance_transaction_id", Text, nullable=True),
    Index("ix_refunds_account_created", "account_id", "created_at", "id"),
    Index("ix_refunds_charge_id", "charge_id"),
)

disputes = Table(
    "disputes",
    core_metadata,
    Column("id", Text, primary_key=True),
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("charge_id", Text, ForeignKey("charges.id"), nullable=False),
    Column("payment_intent_id", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", Text, nullable=False),
    # The evidence text fields given so far, by Stripe's names; a field never given is absent.
    Column("evidence", JSONB, nullable=False),
    Column("evidence_due_by", DateTime(timezone=True), nullable=False),
    Column("submission_count", Integer, nullable=False),
    Column("past_due", Boolean, nullable=False),
    # The balance transactions (txn_) of the money the dispute moved, oldest first.
    Column("balance_transaction_ids", ARRAY(Text), nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The disputed charge's card brand, which the network's reason code depends on; null only
    # for a dispute a process of the version before it opened (core migration 0085).
    Column("card_brand", Text, nullable=True),
    Index("ix_disputes_account_created", "account_id", "created_at", "id"),
    # A charge is disputed at most once: the job that opens its dispute may run twice.
    Index("ix_disputes_charge_id", "charge_id", unique=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    core_metadata,
    # Refuses the claim of a call naming an account that does not exist (NOT_FOUND), before
    # anything else is written.
    Column("account_id", Text, ForeignKey("accounts.id"), nullable=False),
    Column("key", Text, nullable=False),
    # The RPC the key was first used with, and a digest of its parameters.
    Column("endpoint", Text, nullable=False),
    Column("request_digest", LargeBinary, nullable=False),
    Column("request_body", LargeBinary, nullable=False),
    Column("recovery_point", Text, nullable=False),
    # While set and in the future, a request is working on this key.
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("response_code", Integer, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("payment_intent_id", Text, nullable=True),
    Column("charge_id", Text, nullable=True),
    Column("refund_id", Text, nullable=True),
    Column("request_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_run_at", DateTime(timezone=True), nullable=False),
    # The current claimant's fencing token (see remit.payments.idempotency.KeyRecord.owner).
    Column("owner", Text, nullable=True),
    # The URL path of the REST request that first used the key (`/v1/payment_intents/pi_1/
    # confirm`), named when the key is reused elsewhere; null for a call no HTTP request made,
    # and for keys stored before paths were kept.
    Column("request_path", Text, nullable=True),
    # When the request finished (null until then, and on keys finished before this was kept):
    # a finished key's life counts from it (`remit.payments.idempotency.life_began`).
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # What an operator sees of a request that stays unfinished (`remit.payments.held_requests`):
    # how often the completer (or `remit held-requests retry`) tried to finish it, and why its
    # latest try failed. Never card data: an error code, remit's own message, and for a record
    # the acquirer holds otherwise than expected, its reference, its operation id and the names
    # of the fields that differ.
    Column("completer_attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_failure_at", DateTime(timezone=True), nullable=True),
    Column("last_failure_code", Text, nullable=True),
    Column("last_failure_message", Text, nullable=True),
    Column("last_failure_reference", Text, nullable=True),
    Column("last_failure_operation", Text, nullable=True),
    Column("last_failure_fields", ARRAY(Text), nullable=True),
    PrimaryKeyConstraint("account_id", "key", name="pk_idempotency_keys"),
    Index("ix_idempotency_keys_created_at", "created_at"),
    # The completer's claim: unfinished keys, oldest try first (`idempotency.claim_abandoned`);
    # its backoff is checked on the rows the index yields.
    Index(
        "ix_idempotency_keys_unfinished",
        "last_run_at",
        postgresql_where=text("recovery_point <> 'finished'"),
    ),
)
