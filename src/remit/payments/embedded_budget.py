"""How much of one answer the lists a page embeds may take: a page of charges with their
refunds (GET /v1/charges?expand[]=data.refunds), and what versions before 2022-11-15 embed in
each object of a page (a PaymentIntent's charges, a Charge's refunds). Each list holds at most
a page (100) of items, and a page holds at most 100 objects, but nothing else held their bytes:
100 refunds at Stripe's metadata limits (50 keys of 40 characters, values of 500) are ~2.7 MB,
and a page of 100 charges with such refunds ~270 MB, built in the core's memory and refused by
the facade. The core answers the lists that fit this budget, whole (the first always, however
large: at most one page of items), and names the parents it left out; the facade asks for those
again until it has them all."""

from typing import Final

from remit.grpcutil.facade_limits import FACADE_RECEIVE_BYTES

EMBEDDED_ANSWER_BYTES: Final = FACADE_RECEIVE_BYTES // 4
"""4 MiB of a 16 MiB answer. What is counted is each item's JSON text as the database holds it,
which runs above its protobuf encoding (names and timestamps spelled out), so the lists answered
take at most this much, or one list alone (100 items of at most ~28 KB: under 3 MB). The rest
of an answer is its page of parents (ListCharges: at most 100 charges of a few tens of KB each,
about as much again), which leaves the answer well within the facade's limit."""
