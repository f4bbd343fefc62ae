"""How much of one answer the lists a page embeds may take: a page of charges with their
refunds (GET /v1/charges?expand[]=data.refunds), and what versions before 2022-11-15 embed in
each object of a page (a PaymentIntent's charges, a Charge's refunds). Each list holds at most
a page (100) of items, and a page holds at most 100 objects, but nothing else held their bytes:
100 refunds at Stripe's metadata limits (50 keys of 40 characters, values of 500) are ~2.7 MB,
and a page of 100 charges with such refunds ~270 MB, built in the core's memory and refused by
the facade, whose channel takes `FACADE_RECEIVE_BYTES`. (A page's own objects are held to
`PAGE_ANSWER_BYTES`, remit.storage.answer_budget, counted the same way.)

The core answers the lists that fit this budget, whole and in the order asked, and names the
parents it left out; the facade asks for those again until it has them all
(remit.rest.embedded_lists). The database cuts the lists (remit.payments.repository), so those
left out are never read into the core's memory."""

from typing import Final

from remit.grpcutil.facade_limits import FACADE_RECEIVE_BYTES

EMBEDDED_ANSWER_BYTES: Final = FACADE_RECEIVE_BYTES // 4
"""4 MiB of a 16 MiB answer. What is counted is each item's JSON text as the database renders
its row, which runs above its protobuf encoding (names and timestamps spelled out: about twice
as large for a refund with metadata), so the lists answered take less than this. A call that
answers only lists (ListRefundsOfCharges, ListChargesOfPaymentIntents) answers its first list
even when it alone takes more, so that each call moves on: one list of at most 100 items, no
larger than a plain page of such objects (100 refunds with ASCII metadata at Stripe's limits
are under 3 MB). ListCharges holds a page of charges besides, itself within
`PAGE_ANSWER_BYTES` (another 4 MiB), which leaves its refunds out rather than pass the budget.
Either way an answer stays well within the facade's limit."""
