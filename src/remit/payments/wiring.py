"""Building the payments side of the core for a process (core or worker): the card network,
payment methods, customers, the service, its servicer and the hooks other services attach."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import PlatformConfig, network_timeout_s
from remit.core.clock import Clock, SystemClock
from remit.customers.events import CustomerEvents
from remit.customers.service import CustomersService
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.test_card_cache import TestCardCache
from remit.payment_methods.vault_client import GrpcCardVault
from remit.payments.disputed_refunds import DisputedRefunds
from remit.payments.events import PaymentEvents
from remit.payments.expected_disputes import ExpectedDisputes
from remit.payments.future_usage import SaveForFutureUsage
from remit.payments.grpc import PaymentsServicer, payment_intent_message
from remit.payments.ledger_postings import LedgerPostings
from remit.payments.methods import StoredPaymentMethods
from remit.payments.network import GrpcCardNetwork
from remit.payments.ports import HookChain
from remit.payments.service import PaymentsService
from remit.radar.authentication import ThreeDSecureService
from remit.radar.gate import Radar
from remit.radar.grpc import RadarPaymentsServicer, RadarServicer
from remit.radar.reviewing import ReviewsService
from remit.radar.service import RadarService
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2_grpc


@dataclass
class PaymentsWiring:
    service: PaymentsService
    servicer: PaymentsServicer
    payment_methods: PaymentMethodsService
    customers: CustomersService
    hooks: HookChain
    close: Callable[[], Awaitable[None]]
    radar: RadarService
    radar_servicer: RadarServicer
    # The 3-D Secure challenges' answers, which the worker's sweep of expired ones ends too.
    three_d_secure: ThreeDSecureService


def payment_hooks(clock: Clock | None = None) -> HookChain:
    """What a payment change is recorded in besides its own rows: events, the payment method
    saved for future usage (with its own event), the dispute a capture stages, the dispute's
    share of a refund that failed after it opened, then the ledger.

    The ledger last: its posting locks the account's chain head until the commit, so it runs
    after every other write of the transaction (bench/README.md, the ledger's lock). A posting
    it refuses still rolls back the events written before it: they are in the same transaction.
    """
    return HookChain(
        [
            PaymentEvents(clock),
            SaveForFutureUsage(CustomerEvents(clock)),
            ExpectedDisputes(clock),
            DisputedRefunds(clock),
            LedgerPostings(clock),
        ]
    )


def build_payments(
    engine: AsyncEngine, config: PlatformConfig, *, clock: Clock | None = None
) -> PaymentsWiring:
    """`clock` tells every part the time: in the core and the worker the database's
    (`remit.storage.database_clock`), in tests their own."""
    time = clock or SystemClock()
    # The core reaches the vault only through its gRPC API: it holds no vault credentials.
    vault_channel = internal_channel(config.vault.target, InternalAccess.of(config))
    acquirer_channel = internal_channel(config.acquirer.target, InternalAccess.of(config))
    network = GrpcCardNetwork(
        vault_pb2_grpc.VaultServiceStub(vault_channel),
        acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel),
    )
    object_events = CustomerEvents(time)
    payment_methods = PaymentMethodsService(
        engine,
        TestCardCache(GrpcCardVault(vault_channel)),
        time,
        hooks=object_events,
        customer_hooks=object_events,
        fingerprint_checks=GrpcCardVault(vault_channel),
    )
    customers = CustomersService(engine, payment_methods, time, hooks=object_events)
    hooks = payment_hooks(time)
    methods = StoredPaymentMethods(payment_methods)
    # Radar runs inside the payment path; the 3-D Secure page is served by the REST facade.
    gate = Radar(challenge_base_url=config.api_base_url, clock=time)
    service = PaymentsService(
        engine,
        network,
        methods,
        present=payment_intent_message,
        hooks=hooks,
        radar=gate,
        clock=time,
    )
    radar = RadarService(engine, clock=time)

    async def close() -> None:
        # Network steps (authorizations, captures, releases, refunds) whose callers the stop
        # cut off finish first, through these channels.
        await service.drain(network_timeout_s())
        await vault_channel.close()
        await acquirer_channel.close()

    three_d_secure = ThreeDSecureService(engine, service, methods, gate, hooks, clock=time)
    servicer: PaymentsServicer = RadarPaymentsServicer(
        service,
        customers,
        payment_methods,
        three_d_secure=three_d_secure,
        reviews=ReviewsService(engine, service, clock=time),
    )
    return PaymentsWiring(
        service,
        servicer,
        payment_methods,
        customers,
        hooks,
        close,
        radar,
        RadarServicer(radar),
        three_d_secure,
    )
