"""Ledger values as protobuf messages, shared by the servicer and the event outbox.

Domain enums carry Stripe's wire strings as values, so each maps onto its proto enum through
the descriptor (`enum_numbers`), never through a hand-written table that could drift.
"""

from remit.core.jsonview import enum_numbers
from remit.grpcutil.protoconv import timestamp
from remit.ledger.domain import LedgerAccount, LedgerTransaction, PendingStatus, TransactionKind
from remit.ledger.objects import (
    Balance,
    BalanceAmount,
    BalanceTransaction,
    Payout,
    PayoutStatus,
)
from remit_api.ledger.v1 import ledger_pb2 as pb

_BT_TYPE = enum_numbers(pb.BalanceTransactionType.DESCRIPTOR)
_BT_STATUS = enum_numbers(pb.BalanceTransactionStatus.DESCRIPTOR)
_PAYOUT_STATUS = enum_numbers(pb.PayoutStatus.DESCRIPTOR)
_PAYOUT_METHOD = enum_numbers(pb.PayoutMethod.DESCRIPTOR)
_SOURCE_TYPE = enum_numbers(pb.PayoutSourceType.DESCRIPTOR)
_TX_KIND = enum_numbers(pb.LedgerTransactionKind.DESCRIPTOR)
_PENDING_STATUS = enum_numbers(pb.PendingStatus.DESCRIPTOR)


def ledger_transaction_message(transaction: LedgerTransaction) -> pb.LedgerTransaction:
    message = pb.LedgerTransaction(
        id=transaction.id,
        kind=_TX_KIND[transaction.kind.value],  # type: ignore[arg-type]
        postings=[
            pb.Posting(
                ledger_account=p.ledger_account, amount_minor=p.amount_minor, currency=p.currency
            )
            for p in transaction.postings
        ],
        metadata=dict(transaction.metadata),
        created=timestamp(transaction.created_at),
        sequence=transaction.sequence,
        hash=transaction.hash,
        previous_hash=transaction.previous_hash,
    )
    if transaction.description is not None:
        message.description = transaction.description
    if transaction.pending_transaction_id is not None:
        message.pending_transaction_id = transaction.pending_transaction_id
    if transaction.kind is TransactionKind.PENDING and transaction.pending_status is not None:
        message.pending_status = _PENDING_STATUS[transaction.pending_status.value]  # type: ignore[assignment]
    if transaction.resolved_by is not None:
        message.resolved_by = transaction.resolved_by
    return message


def ledger_account_message(account: LedgerAccount) -> pb.LedgerAccount:
    return pb.LedgerAccount(
        id=account.id,
        name=account.name,
        currency=account.currency,
        posted_balance_minor=account.posted_balance_minor,
        pending_incoming_minor=account.pending_incoming_minor,
        pending_outgoing_minor=account.pending_outgoing_minor,
        created=timestamp(account.created_at),
        updated=timestamp(account.updated_at),
    )


def _amount(amount: BalanceAmount) -> pb.BalanceAmount:
    # Every remit balance comes from card payments.
    return pb.BalanceAmount(
        amount=amount.amount,
        currency=amount.currency,
        source_types=pb.BalanceSourceTypes(card=amount.amount),
    )


def balance_message(balance: Balance) -> pb.Balance:
    return pb.Balance(
        available=[_amount(a) for a in balance.available],
        pending=[_amount(a) for a in balance.pending],
        livemode=False,
        # remit holds nothing for connected accounts (it has none): zero in each currency, as
        # Stripe shows an account without Connect reserves.
        connect_reserved=[
            pb.BalanceReserved(amount=0, currency=currency)
            for currency in dict.fromkeys(a.currency for a in balance.available)
        ],
    )


def balance_transaction_message(txn: BalanceTransaction) -> pb.BalanceTransaction:
    message = pb.BalanceTransaction(
        id=txn.id,
        amount=txn.amount,
        available_on=timestamp(txn.available_on),
        balance_type=pb.BALANCE_TRANSACTION_BALANCE_TYPE_PAYMENTS,
        created=timestamp(txn.created_at),
        currency=txn.currency,
        fee=txn.fee,
        fee_details=[
            pb.FeeDetail(
                amount=d.amount, currency=d.currency, description=d.description, type=d.type
            )
            for d in txn.fee_details
        ],
        net=txn.net,
        reporting_category=txn.reporting_category,
        status=_BT_STATUS[txn.status.value],  # type: ignore[arg-type]
        type=_BT_TYPE[txn.type.value],  # type: ignore[arg-type]
    )
    if txn.description is not None:
        message.description = txn.description
    if txn.source_id is not None:
        message.source = txn.source_id
    return message


def _trace_id(payout: Payout) -> pb.PayoutTraceId:
    match payout.status:
        case PayoutStatus.PENDING | PayoutStatus.IN_TRANSIT:
            return pb.PayoutTraceId(status="pending")
        case PayoutStatus.PAID:
            return pb.PayoutTraceId(status="supported", value=f"REMIT{payout.id[-12:].upper()}")
        case PayoutStatus.FAILED | PayoutStatus.CANCELED:
            return pb.PayoutTraceId(status="unsupported")


def payout_message(payout: Payout) -> pb.Payout:
    message = pb.Payout(
        id=payout.id,
        amount=payout.amount,
        arrival_date=timestamp(payout.arrival_date),
        automatic=payout.automatic,
        created=timestamp(payout.created_at),
        currency=payout.currency,
        livemode=False,
        metadata=dict(payout.metadata),
        method=_PAYOUT_METHOD[payout.method.value],  # type: ignore[arg-type]
        # Stripe's `completed`: the balance transactions paid out can be listed by payout.
        # An automatic payout links them in the transaction that creates it
        # (`payout_contents.link_paid_out`), so it is never seen `in_progress`; a manual
        # payout does not say which it took: `not_applicable`.
        reconciliation_status=pb.PAYOUT_RECONCILIATION_STATUS_COMPLETED
        if payout.automatic
        else pb.PAYOUT_RECONCILIATION_STATUS_NOT_APPLICABLE,
        source_type=_SOURCE_TYPE[payout.source_type],  # type: ignore[arg-type]
        status=_PAYOUT_STATUS[payout.status.value],  # type: ignore[arg-type]
        trace_id=_trace_id(payout),
        type=pb.PAYOUT_TYPE_BANK_ACCOUNT,
    )
    for name, value in (
        ("balance_transaction", payout.balance_transaction_id),
        ("failure_balance_transaction", payout.failure_balance_transaction_id),
        ("failure_code", payout.failure_code),
        ("failure_message", payout.failure_message),
        ("description", payout.description),
        ("destination", payout.destination),
        ("statement_descriptor", payout.statement_descriptor),
    ):
        if value is not None:
            setattr(message, name, value)
    return message


PENDING_STATUS_FROM_PROTO = {v: PendingStatus(k) for k, v in _PENDING_STATUS.items()}
