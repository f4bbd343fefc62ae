"""Kill the core with SIGKILL right after each recovery point; a retry with the same key, or the
completer alone, finishes the payment exactly once (checked against the acquirer's records).
So too for a capture, a refund and a cancel, and for the worker's expiry of an authorization."""

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from remit.config import TOKEN_ENV
from remit.storage.embedded import to_sqlalchemy_url
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import platform_env
from tests.support.postgres import WorkerDatabases
from tests.support.processes import ProcessSet, process_set
from tests.support.waiting import wait_for

RECOVERY_POINTS = ["started", "attempt_created", "authorization_done", "finished"]
pytestmark = [
    pytest.mark.xdist_group("crash"),
    pytest.mark.own_platform(reason="kills and restarts the processes it runs one by one"),
]


@pytest.fixture(scope="module")
def processes(databases: WorkerDatabases) -> Iterator[ProcessSet]:
    with tempfile.TemporaryDirectory(prefix="remit-crash-") as scratch:
        # REMIT_CRASH_TESTING=1: the processes honour the crash switch (`_crash_core_at`).
        env = platform_env(
            databases,
            Path(scratch) / "data",
            REMIT_IDEMPOTENCY_LEASE_S="1",
            REMIT_CRASH_TESTING="1",
        )
        with process_set(env, Path(scratch)) as running:
            for role in ("acquirer", "vault", "core", "worker", "api"):
                running.start(role)
            yield running


def _api(processes: ProcessSet) -> str:
    return f"http://127.0.0.1:{processes.env['REMIT_API_PORT']}"


def _pay(processes: ProcessSet, account: TestAccount, key: str) -> httpx.Response:
    return httpx.post(
        f"{_api(processes)}/v1/payment_intents",
        data={
            "amount": "4200",
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": "true",
            "return_url": "https://shop.example/return",
        },
        headers={"Authorization": f"Bearer {account.secret_key}", "Idempotency-Key": key},
        timeout=30,
    )


def _intents(processes: ProcessSet, account: TestAccount) -> list[dict[str, object]]:
    response = httpx.get(
        f"{_api(processes)}/v1/payment_intents",
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=10,
    )
    assert response.status_code == 200
    data: list[dict[str, object]] = response.json()["data"]
    return data


def _operations(processes: ProcessSet, account: TestAccount, kind: str) -> int:
    """How many operations of `kind` (authorize, capture, refund...) the acquirer recorded
    for the account."""
    engine = create_engine(to_sqlalchemy_url(processes.env["ACQUIRER_DATABASE_URL"]))
    try:
        with engine.connect() as db:
            return int(
                db.execute(
                    text(
                        "SELECT count(*) FROM operations WHERE kind = :kind "
                        "AND merchant_id = :account"
                    ),
                    {"kind": kind, "account": account.id},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _authorizations(processes: ProcessSet, account: TestAccount) -> int:
    return _operations(processes, account, "authorize")


def _core_endpoint(processes: ProcessSet) -> object:
    from remit.config import Endpoint

    return Endpoint("127.0.0.1", int(processes.env["REMIT_CORE_PORT"]))


def _account(processes: ProcessSet) -> TestAccount:
    return create_account(
        _core_endpoint(processes),  # type: ignore[arg-type]
        token=processes.env[TOKEN_ENV],
    )


def _crash_core_at(processes: ProcessSet, point: str, marker: Path) -> None:
    processes.kill("core")
    processes.start("core", {"REMIT_CRASH_AFTER": point, "REMIT_CRASH_MARKER": str(marker)})


@pytest.mark.parametrize("point", RECOVERY_POINTS)
def test_a_retry_with_the_same_key_finishes_a_payment_interrupted_by_a_crash(
    processes: ProcessSet, point: str, tmp_path: Path
) -> None:
    account = _account(processes)
    _crash_core_at(processes, point, tmp_path / "crashed")
    key = f"retry-{point}"
    interrupted = _pay(processes, account, key)
    assert interrupted.status_code >= 500, interrupted.text
    assert processes.wait_for_exit("core") == -9
    processes.start("core")

    def retried() -> bool:
        response = _pay(processes, account, key)
        return response.status_code == 200 and response.json()["status"] == "succeeded"

    wait_for(retried, 30, every_s=0.25)
    intents = _intents(processes, account)
    assert [i["status"] for i in intents] == ["succeeded"]
    assert _authorizations(processes, account) == 1


@pytest.mark.parametrize("point", RECOVERY_POINTS)
def test_the_completer_alone_finishes_a_payment_interrupted_by_a_crash(
    processes: ProcessSet, point: str, tmp_path: Path
) -> None:
    account = _account(processes)
    _crash_core_at(processes, point, tmp_path / "crashed")
    interrupted = _pay(processes, account, f"completer-{point}")
    assert interrupted.status_code >= 500, interrupted.text
    assert processes.wait_for_exit("core") == -9
    processes.start("core")
    if point == "started":
        # Nothing had happened yet: the completer drops the key and nothing is ever charged;
        # the client's retry starts afresh and charges once.
        time.sleep(4)
        assert _intents(processes, account) == []
        assert _authorizations(processes, account) == 0

        def retried() -> bool:
            # (A 409 while the completer, slowed by a loaded machine, still holds the key.)
            response = _pay(processes, account, "completer-started")
            return response.status_code == 200 and response.json()["status"] == "succeeded"

        wait_for(retried, 30, every_s=0.25)
    else:
        wait_for(
            lambda: [i["status"] for i in _intents(processes, account)] == ["succeeded"],
            30,
            every_s=0.25,
        )
    assert _authorizations(processes, account) == 1


def _post(
    processes: ProcessSet, account: TestAccount, path: str, data: dict[str, str], key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {account.secret_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{_api(processes)}{path}", data=data, headers=headers, timeout=30)


def _refunds(processes: ProcessSet, account: TestAccount) -> int:
    return _operations(processes, account, "refund")


def _reviewed_payment(processes: ProcessSet, account: TestAccount) -> str:
    """A succeeded payment that a rule sent to review; its review's id."""
    rule = {"rule": "Review if :amount_in_usd: >= 300"}
    assert _post(processes, account, "/v1/radar/rules", rule, None).status_code == 200
    paid = _post(
        processes,
        account,
        "/v1/payment_intents",
        {"amount": "30000", "currency": "usd", "payment_method": "pm_card_visa",
         "confirm": "true", "return_url": "https://shop.example/return"},
        None,
    )  # fmt: skip
    assert paid.json()["status"] == "succeeded", paid.text
    review = paid.json()["review"]
    assert isinstance(review, str)
    return review


@pytest.mark.parametrize("finisher", ["retry", "completer"])
def test_a_review_close_interrupted_after_its_refund_finishes_once(
    processes: ProcessSet, finisher: str, tmp_path: Path
) -> None:
    """The close refunded, then the core died before closing the review: the client's retry
    with its key, or the completer alone, closes it; the acquirer refunded once, and the key
    then replays the close."""
    account = _account(processes)
    review = _reviewed_payment(processes, account)
    _crash_core_at(processes, "review_payment_refused", tmp_path / "crashed")
    path, action, key = f"/v1/reviews/{review}/close", {"action": "refund_as_fraud"}, "close"
    assert _post(processes, account, path, action, key).status_code >= 500
    assert processes.wait_for_exit("core") == -9
    processes.start("core")

    def closed() -> bool:
        if finisher == "retry":
            answer = _post(processes, account, path, action, key)
            return answer.status_code == 200 and answer.json()["open"] is False
        answer = httpx.get(
            f"{_api(processes)}/v1/reviews/{review}",
            headers={"Authorization": f"Bearer {account.secret_key}"},
            timeout=10,
        )
        return answer.status_code == 200 and answer.json()["open"] is False

    wait_for(closed, 30, every_s=0.25)
    # The completer finishes the key in the close's transaction, so a retry now replays.
    replayed = _post(processes, account, path, action, key)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["closed_reason"] == "refunded_as_fraud"
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert _refunds(processes, account) == 1


def _refunded_at_the_acquirer(processes: ProcessSet, account: TestAccount) -> None:
    """The acquirer has refunded the account's authorizations in full already (out of band,
    say by its own operator): it refuses any refund of them now."""
    engine = create_engine(to_sqlalchemy_url(processes.env["ACQUIRER_DATABASE_URL"]))
    try:
        with engine.begin() as db:
            db.execute(
                text(
                    "UPDATE authorizations SET refunded_minor = captured_minor "
                    "WHERE merchant_id = :account AND captured_minor > 0"
                ),
                {"account": account.id},
            )
    finally:
        engine.dispose()


def test_a_review_close_whose_refund_failed_and_that_died_leaves_the_review_to_approve(
    processes: ProcessSet, tmp_path: Path
) -> None:
    """The acquirer refused the close's refund, and the core died right after recording the
    refund as failed, before the close took its mark back. The client sent no key, so nothing
    is left for the completer: the approval itself sees that the refund failed and goes
    through, and a close with the other refund reason is told so. The acquirer was asked for
    one refund only."""
    account = _account(processes)
    review = _reviewed_payment(processes, account)
    _refunded_at_the_acquirer(processes, account)
    _crash_core_at(processes, "finished", tmp_path / "crashed")
    path = f"/v1/reviews/{review}/close"
    died = _post(processes, account, path, {"action": "refund_as_fraud"}, None)
    assert died.status_code >= 500, died.text
    assert processes.wait_for_exit("core") == -9
    processes.start("core")

    other = _post(processes, account, path, {"action": "refund"}, None)
    assert other.status_code == 400, other.text
    assert other.json()["error"]["code"] == "refund_failed"
    approved = _post(processes, account, f"/v1/reviews/{review}/approve", {}, None)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["open"], approved.json()["closed_reason"]) == (False, "approved")
    assert _refunds(processes, account) == 1


def test_a_review_close_by_cancel_whose_void_failed_is_finished_by_the_completer(
    processes: ProcessSet,
) -> None:
    """Closing a review by canceling its uncaptured payment, while the acquirer is down: the
    void fails and the client, which sent no key, does not retry. Once the acquirer is back,
    the completer alone voids once, cancels the intent and closes the review."""
    account = _account(processes)
    rule = {"rule": "Review if :amount_in_usd: >= 300"}
    assert _post(processes, account, "/v1/radar/rules", rule, None).status_code == 200
    held = _post(
        processes,
        account,
        "/v1/payment_intents",
        {"amount": "30000", "currency": "usd", "payment_method": "pm_card_visa",
         "confirm": "true", "return_url": "https://shop.example/return",
         "capture_method": "manual"},
        None,
    )  # fmt: skip
    assert held.json()["status"] == "requires_capture", held.text
    review, intent_id = held.json()["review"], held.json()["id"]
    headers = {"Authorization": f"Bearer {account.secret_key}"}

    processes.kill("acquirer")
    try:
        close = _post(processes, account, f"/v1/reviews/{review}/close", {"action": "cancel"}, None)
        assert close.status_code >= 500, close.text
    finally:
        processes.start("acquirer")

    def closed() -> bool:
        answer = httpx.get(f"{_api(processes)}/v1/reviews/{review}", headers=headers, timeout=10)
        return answer.status_code == 200 and answer.json()["open"] is False

    wait_for(closed, 30, every_s=0.25)
    finished = httpx.get(f"{_api(processes)}/v1/reviews/{review}", headers=headers, timeout=10)
    assert finished.json()["closed_reason"] == "canceled"
    intent = httpx.get(
        f"{_api(processes)}/v1/payment_intents/{intent_id}", headers=headers, timeout=10
    )
    assert intent.json()["status"] == "canceled", intent.text
    assert intent.json()["cancellation_reason"] == "fraudulent"
    assert _operations(processes, account, "void") == 1


@pytest.mark.parametrize("finisher", ["retry", "completer"])
def test_a_capture_interrupted_before_the_network_applies_its_metadata_once_captured(
    processes: ProcessSet, finisher: str, tmp_path: Path
) -> None:
    """The core died right after recording a capture with metadata and descriptors, before
    asking the network: nothing had changed yet. The client's retry with its key, or the
    completer alone, captures once and applies them; the key then replays the captured
    intent with its metadata."""
    account = _account(processes)
    held = _post(
        processes,
        account,
        "/v1/payment_intents",
        {"amount": "2500", "currency": "usd", "payment_method": "pm_card_visa",
         "confirm": "true", "return_url": "https://shop.example/return",
         "capture_method": "manual", "metadata[order]": "6735", "metadata[gift]": "yes"},
        None,
    )  # fmt: skip
    assert held.json()["status"] == "requires_capture", held.text
    intent_id, charge_id = held.json()["id"], held.json()["latest_charge"]
    path, key = f"/v1/payment_intents/{intent_id}/capture", "capture-interrupted"
    capture = {"metadata[gift]": "", "metadata[shipped]": "yes",
               "statement_descriptor_suffix": "ORDER 6735"}  # fmt: skip
    _crash_core_at(processes, "attempt_created", tmp_path / "crashed")
    assert _post(processes, account, path, capture, key).status_code >= 500
    assert processes.wait_for_exit("core") == -9
    processes.start("core")

    def read(resource: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {account.secret_key}"}
        found: dict[str, Any] = httpx.get(
            f"{_api(processes)}/v1/{resource}", headers=headers, timeout=10
        ).json()
        return found

    def observed() -> str:
        """The intent's status, having checked that it shows the capture's changes exactly
        when it is captured, whenever it is looked at. The intent and the charge are two
        reads, and the capture may commit between them: the charge is judged only when the
        intent read on both sides of it has the same status."""
        while True:
            before = read(f"payment_intents/{intent_id}")
            charge = read(f"charges/{charge_id}")
            intent = read(f"payment_intents/{intent_id}")
            if intent["status"] == before["status"]:
                break
        if intent["status"] == "succeeded":
            assert intent["metadata"] == {"order": "6735", "shipped": "yes"}
            assert charge["statement_descriptor_suffix"] == "ORDER 6735"
        else:
            assert intent["status"] == "requires_capture"
            assert intent["metadata"] == {"order": "6735", "gift": "yes"}
            assert charge["statement_descriptor_suffix"] is None
        assert charge["captured"] is (intent["status"] == "succeeded")
        return str(intent["status"])

    def captured() -> bool:
        if finisher == "completer":
            return observed() == "succeeded"
        answer = _post(processes, account, path, capture, key)
        return answer.status_code == 200 and answer.json()["status"] == "succeeded"

    observed()
    wait_for(captured, 30, every_s=0.25)
    replayed = _post(processes, account, path, capture, key)
    assert replayed.status_code == 200, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["metadata"] == {"order": "6735", "shipped": "yes"}
    assert replayed.json()["amount_received"] == 2500
    assert observed() == "succeeded"
    assert _operations(processes, account, "capture") == 1


@pytest.mark.parametrize("finisher", ["retry", "completer"])
def test_a_payment_whose_card_was_detached_after_the_network_answered_succeeds_once(
    processes: ProcessSet, finisher: str, tmp_path: Path
) -> None:
    """An off-session charge on a saved card: the acquirer approved and captured it, then the
    core died before storing the answer, and the merchant deleted the customer (detaching its
    cards). The retry, or the completer, still finishes the payment the card was chosen for
    when it could pay: succeeded, authorized once."""
    account = _account(processes)
    customer = _post(processes, account, "/v1/customers", {}, None).json()["id"]
    attached = _post(
        processes,
        account,
        "/v1/payment_methods/pm_card_visa/attach",
        {"customer": customer},
        None,
    )
    assert attached.status_code == 200, attached.text
    payment = {"amount": "3100", "currency": "usd", "customer": customer,
               "payment_method": attached.json()["id"], "confirm": "true",
               "off_session": "true"}  # fmt: skip
    key = f"detached-{finisher}"
    # The completer waits until the customer is gone, so it cannot finish the payment first.
    processes.kill("worker")
    try:
        _crash_core_at(processes, "authorization_answered", tmp_path / "crashed")
        assert _post(processes, account, "/v1/payment_intents", payment, key).status_code >= 500
        assert processes.wait_for_exit("core") == -9
        processes.start("core")
        deleted = httpx.delete(
            f"{_api(processes)}/v1/customers/{customer}",
            headers={"Authorization": f"Bearer {account.secret_key}"},
            timeout=10,
        )
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted"] is True
        if finisher == "completer":
            processes.start("worker")

        def finished() -> bool:
            if finisher == "completer":
                return [i["status"] for i in _intents(processes, account)] == ["succeeded"]
            answer = _post(processes, account, "/v1/payment_intents", payment, key)
            return answer.status_code == 200 and answer.json()["status"] == "succeeded"

        wait_for(finished, 30, every_s=0.25)
    finally:
        if "worker" not in processes.children:
            processes.start("worker")
    assert [i["status"] for i in _intents(processes, account)] == ["succeeded"]
    assert _authorizations(processes, account) == 1


# --- Capture, refund and cancel --------------------------------------------------------------
#
# Each is killed right after each of its recovery points, the `*_answered` ones most of all:
# the money has moved at the network, and nothing here says so yet. Held and sale amounts are
# those of `_paid`; a partial capture takes 3000 of 4200, a partial refund gives 1000 back.


class Operation:
    """One kind of operation on a payment of 4200: how to make it, and what it leaves."""

    def __init__(
        self,
        name: str,
        path: str,
        data: dict[str, str],
        *,
        capture_method: str,
        done: str,
        acquirer: list[tuple[str, int]],
        intent: tuple[str, int],
        charge: tuple[bool, int, int],
    ) -> None:
        self.name, self.path, self.data = name, path, data
        self.capture_method = capture_method
        # The answer's status once done: the intent's (capture, cancel) or the refund's.
        self.done = done
        # The account's operations at the acquirer, (kind, amount), sorted.
        self.acquirer = acquirer
        # The intent's (status, amount_received); the charge's (captured, amount_captured,
        # amount_refunded).
        self.intent, self.charge = intent, charge


OPERATIONS = {
    operation.name: operation
    for operation in [
        Operation(
            "capture", "/v1/payment_intents/{intent}/capture", {},
            capture_method="manual", done="succeeded",
            acquirer=[("authorize", 4200), ("capture", 4200)],
            intent=("succeeded", 4200), charge=(True, 4200, 0),
        ),
        Operation(
            "partial_capture", "/v1/payment_intents/{intent}/capture",
            {"amount_to_capture": "3000"},
            capture_method="manual", done="succeeded",
            acquirer=[("authorize", 4200), ("capture", 3000)],
            intent=("succeeded", 3000), charge=(True, 3000, 0),
        ),
        Operation(
            "partial_refund", "/v1/refunds", {"payment_intent": "{intent}", "amount": "1000"},
            capture_method="automatic", done="succeeded",
            acquirer=[("authorize", 4200), ("refund", 1000)],
            intent=("succeeded", 4200), charge=(True, 4200, 1000),
        ),
        Operation(
            "cancel", "/v1/payment_intents/{intent}/cancel",
            {"cancellation_reason": "requested_by_customer"},
            capture_method="manual", done="canceled",
            acquirer=[("authorize", 4200), ("void", 4200)],
            intent=("canceled", 0), charge=(False, 0, 0),
        ),
    ]
}  # fmt: skip

# (operation, recovery point). A full capture is interrupted only once the network answered
# (its `attempt_created` is the metadata test's above); `started` only for a retry, since the
# completer drops a key that never passed it whatever its request (the payment test above).
INTERRUPTED_OPERATIONS = [
    ("capture", "capture_answered"),
    *(("partial_capture", p) for p in
      ("started", "attempt_created", "capture_answered", "finished")),
    *(("partial_refund", p) for p in
      ("started", "attempt_created", "refund_answered", "finished")),
    *(("cancel", p) for p in ("started", "attempt_created", "void_answered", "finished")),
]  # fmt: skip


def _get(processes: ProcessSet, account: TestAccount, resource: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{_api(processes)}/v1/{resource}",
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _acquirer_records(processes: ProcessSet, account: TestAccount) -> list[tuple[str, int]]:
    """The account's operations at the acquirer, (kind, amount), sorted; the acquirer keeps
    one per reference, so an operation done twice shows twice."""
    engine = create_engine(to_sqlalchemy_url(processes.env["ACQUIRER_DATABASE_URL"]))
    try:
        with engine.connect() as db:
            rows = db.execute(
                text("SELECT kind, amount_minor FROM operations WHERE merchant_id = :account"),
                {"account": account.id},
            ).all()
    finally:
        engine.dispose()
    return sorted((str(kind), int(amount)) for kind, amount in rows)


def _ledger_verifies(processes: ProcessSet, account: TestAccount) -> None:
    verify = subprocess.run(
        [sys.executable, "-m", "remit", "ledger", "verify", "--account", account.id],
        env=processes.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _operated_status(
    processes: ProcessSet, account: TestAccount, operation: Operation, intent_id: str
) -> str | None:
    """The status the operation left, as read (not through its key): the intent's, or its
    refund's (None before there is one)."""
    if operation.name != "partial_refund":
        return str(_get(processes, account, f"payment_intents/{intent_id}")["status"])
    refunds = _get(processes, account, f"refunds?payment_intent={intent_id}")["data"]
    return None if not refunds else str(refunds[0]["status"])


@pytest.mark.parametrize(
    ("finisher", "name", "point"),
    [("retry", *case) for case in INTERRUPTED_OPERATIONS]
    # At `finished` the key is finished already: the completer has nothing to look at.
    + [("completer", *c) for c in INTERRUPTED_OPERATIONS if c[1] not in ("started", "finished")],
)
def test_an_operation_interrupted_by_a_crash_is_done_once(
    processes: ProcessSet, finisher: str, name: str, point: str, tmp_path: Path
) -> None:
    """The core died right after one of the operation's recovery points. The client's retry
    with its key, or the completer alone, finishes it: the acquirer did it once, the intent,
    charge and refund agree with the acquirer, the key replays the outcome, and the ledger
    verifies."""
    operation = OPERATIONS[name]
    account = _account(processes)
    paid = _post(
        processes,
        account,
        "/v1/payment_intents",
        {"amount": "4200", "currency": "usd", "payment_method": "pm_card_visa",
         "confirm": "true", "return_url": "https://shop.example/return",
         "capture_method": operation.capture_method},
        None,
    )  # fmt: skip
    assert paid.status_code == 200, paid.text
    intent_id = paid.json()["id"]
    path = operation.path.format(intent=intent_id)
    data = {field: value.format(intent=intent_id) for field, value in operation.data.items()}
    key = f"{name}-{point}-{finisher}"

    _crash_core_at(processes, point, tmp_path / "crashed")
    interrupted = _post(processes, account, path, data, key)
    assert interrupted.status_code >= 500, interrupted.text
    assert processes.wait_for_exit("core") == -9
    processes.start("core")

    def finished() -> bool:
        if finisher == "completer":
            return _operated_status(processes, account, operation, intent_id) == operation.done
        # (A 409 while the dead request's lease runs out, or while the completer holds it.)
        answer = _post(processes, account, path, data, key)
        return answer.status_code == 200 and answer.json()["status"] == operation.done

    wait_for(finished, 30, every_s=0.25)

    replayed = _post(processes, account, path, data, key)
    assert replayed.status_code == 200, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["status"] == operation.done
    assert _acquirer_records(processes, account) == operation.acquirer
    intent = _get(processes, account, f"payment_intents/{intent_id}")
    assert (intent["status"], intent["amount_received"]) == operation.intent
    charge = _get(processes, account, f"charges/{intent['latest_charge']}")
    assert (
        charge["captured"],
        charge["amount_captured"],
        charge["amount_refunded"],
    ) == operation.charge
    if name == "partial_refund":
        (refund,) = _get(processes, account, f"refunds?payment_intent={intent_id}")["data"]
        assert (refund["status"], refund["amount"]) == ("succeeded", 1000)
        assert replayed.json()["id"] == refund["id"]
    _ledger_verifies(processes, account)


def test_an_expiry_interrupted_after_its_void_was_answered_voids_once(
    processes: ProcessSet, tmp_path: Path
) -> None:
    """The expiry job released an authorization 7 days old, and the worker died before
    recording it. The job's next run, once its lease has run out, looks the release up rather
    than send it again: the acquirer voided once, the intent expired, the ledger verifies."""
    account = _account(processes)
    held = _post(
        processes,
        account,
        "/v1/payment_intents",
        {"amount": "4200", "currency": "usd", "payment_method": "pm_card_visa",
         "confirm": "true", "return_url": "https://shop.example/return",
         "capture_method": "manual"},
        None,
    )  # fmt: skip
    assert held.json()["status"] == "requires_capture", held.text
    intent_id = held.json()["id"]
    processes.kill("worker")
    processes.start(
        "worker",
        {"REMIT_CRASH_AFTER": "void_answered", "REMIT_CRASH_MARKER": str(tmp_path / "crashed")},
    )
    engine = create_engine(to_sqlalchemy_url(processes.env["DATABASE_URL"]))
    try:
        with engine.begin() as db:
            # 8 days old by the database's clock, and its expiry due.
            db.execute(
                text("UPDATE charges SET authorized_at = now() - interval '8 days' "
                     "WHERE payment_intent_id = :id"),
                {"id": intent_id},
            )  # fmt: skip
            db.execute(
                text("UPDATE jobs SET run_at = now() WHERE kind = 'payments.expire_authorization' "
                     "AND payload->>'payment_intent_id' = :id"),
                {"id": intent_id},
            )  # fmt: skip
        assert processes.wait_for_exit("worker") == -9
        with engine.begin() as db:
            # The dead run's lease runs out (after a minute, unless hurried here).
            db.execute(
                text("UPDATE jobs SET locked_until = now() "
                     "WHERE kind = 'payments.expire_authorization' "
                     "AND payload->>'payment_intent_id' = :id"),
                {"id": intent_id},
            )  # fmt: skip
    finally:
        engine.dispose()
    processes.start("worker")
    wait_for(
        lambda: _get(processes, account, f"payment_intents/{intent_id}")["status"] == "canceled",
        30,
        every_s=0.25,
    )
    intent = _get(processes, account, f"payment_intents/{intent_id}")
    assert intent["cancellation_reason"] == "expired"
    assert _acquirer_records(processes, account) == [("authorize", 4200), ("void", 4200)]
    charge = _get(processes, account, f"charges/{intent['latest_charge']}")
    assert (charge["captured"], charge["amount_captured"]) == (False, 0)
    _ledger_verifies(processes, account)
