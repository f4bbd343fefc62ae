"""`remit held-requests list` and `remit held-requests retry`: the requests left unfinished at a
recovery point, through the core's PaymentsService (ListHeldRequests, RetryHeldRequest).

`list` shows the unfinished requests begun at least `--older-than` minutes ago, the oldest first,
each with its account, endpoint, recovery point, age, the completer's tries and its latest
failure; it changes nothing. It exits 1 when it lists any (a request held that long needs an
operator), 0 when none.

`retry` runs one more of the completer's tries at one request, now, and says what it came to:
finished (0), dropped because it had never got past `started` and sent nothing (0), or still
held, with the failure (1). While a request (its client's retry, the completer) is working on
it, the core answers to retry later, and the command exits 75. It finishes a request only with
what the acquirer holds, as the completer would; nothing here marks a payment paid or failed by
hand.

Exit codes: `remit.command_exits`.
"""

import json
from datetime import UTC, datetime
from typing import Final, TextIO

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from remit.command_exits import EXIT_CLEAN, EXIT_FINDINGS, CommandRefusedError
from remit.config import PlatformConfig
from remit.grpcutil.call_failures import call_failed
from remit.grpcutil.internal_auth import InternalAccess, internal_sync_channel
from remit.payments.held_request_bounds import (
    MAX_LIST_LIMIT,
    MAX_OLDER_THAN_MINUTES,
)
from remit.payments.requests import client_key_of
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc

LIST_TIMEOUT_S: Final = 10.0
# A retry waits for the network as the completer does: a look-up or two, each up to the
# network's timeout (REMIT_NETWORK_TIMEOUT_S, at most 120 s), and a send.
RETRY_TIMEOUT_S: Final = 300.0

_OUTCOMES: Final = {
    pb.RETRY_HELD_REQUEST_OUTCOME_FINISHED: "finished",
    pb.RETRY_HELD_REQUEST_OUTCOME_STILL_HELD: "still_held",
    pb.RETRY_HELD_REQUEST_OUTCOME_DROPPED: "dropped",
}


def _stub(channel: grpc.Channel) -> payments_pb2_grpc.PaymentsServiceStub:
    return payments_pb2_grpc.PaymentsServiceStub(channel)


def list_command(
    config: PlatformConfig,
    *,
    older_than_minutes: int,
    account_id: str | None,
    limit: int,
    as_json: bool,
    out: TextIO,
) -> int:
    """List the held requests on `out`; 1 if there are any, 0 if none. A refusal, the core's
    included, is raised as `CommandRefusedError`, a core out of reach or too slow as
    `CommandTemporaryFailureError` (`remit.command_exits`)."""
    if not 0 <= older_than_minutes <= MAX_OLDER_THAN_MINUTES:
        raise CommandRefusedError(
            f"--older-than must be between 0 and {MAX_OLDER_THAN_MINUTES} minutes, "
            f"got {older_than_minutes}"
        )
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise CommandRefusedError(f"--limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
    request = pb.ListHeldRequestsRequest(older_than_seconds=older_than_minutes * 60, limit=limit)
    if account_id is not None:
        request.account_id = account_id
    with internal_sync_channel(config.core.target, InternalAccess.of(config)) as channel:
        try:
            reply: pb.ListHeldRequestsResponse = _stub(channel).ListHeldRequests(
                request, timeout=LIST_TIMEOUT_S
            )
        except grpc.RpcError as error:
            raise call_failed(error, "core", config.core.target) from None
    held = list(reply.data)
    as_of = _time(reply.as_of)
    if as_json:
        out.write(render_list_json(held, reply.has_more, as_of))
    else:
        out.write(render_table(held, reply.has_more, as_of, older_than_minutes))
    return EXIT_FINDINGS if held else EXIT_CLEAN


def retry_command(
    config: PlatformConfig, *, account_id: str, key: str, as_json: bool, out: TextIO
) -> int:
    """Retry one held request now; 0 finished or dropped, 1 still held."""
    request = pb.RetryHeldRequestRequest(account_id=account_id, idempotency_key=key)
    with internal_sync_channel(config.core.target, InternalAccess.of(config)) as channel:
        try:
            reply: pb.RetryHeldRequestResponse = _stub(channel).RetryHeldRequest(
                request, timeout=RETRY_TIMEOUT_S
            )
        except grpc.RpcError as error:
            raise call_failed(error, "core", config.core.target) from None
    outcome = _OUTCOMES.get(reply.outcome, "unknown")
    held = reply.held_request if reply.HasField("held_request") else None
    if as_json:
        record = None if held is None else held_record(held, as_of=None)
        out.write(json.dumps({"outcome": outcome, "held_request": record}) + "\n")
    else:
        out.write(render_retry(outcome, account_id, key, held))
    return EXIT_FINDINGS if outcome == "still_held" else EXIT_CLEAN


def _time(moment: Timestamp) -> datetime:
    return moment.ToDatetime(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def failure_record(failure: pb.HeldRequestFailure) -> dict[str, object]:
    return {
        "at": _iso(_time(failure.at)),
        "code": failure.code,
        "message": failure.message,
        "reference": failure.reference if failure.HasField("reference") else None,
        "operation": failure.operation if failure.HasField("operation") else None,
        "differing_fields": list(failure.differing_fields),
    }


def held_record(held: pb.HeldRequest, *, as_of: datetime | None) -> dict[str, object]:
    """A held request as `--json` prints it; its age in seconds when `as_of` is given."""
    record: dict[str, object] = {
        "account_id": held.account_id,
        "idempotency_key": held.idempotency_key,
        "request_id": held.request_id if held.HasField("request_id") else None,
        "endpoint": held.endpoint,
        "recovery_point": held.recovery_point,
        "created": _iso(_time(held.created)),
    }
    if as_of is not None:
        record["age_seconds"] = int((as_of - _time(held.created)).total_seconds())
    record.update(
        {
            "last_run": _iso(_time(held.last_run)),
            "in_progress": held.in_progress,
            "payment_intent": held.payment_intent if held.HasField("payment_intent") else None,
            "charge": held.charge if held.HasField("charge") else None,
            "refund": held.refund if held.HasField("refund") else None,
            "completer_attempts": held.completer_attempts,
            "last_failure": (
                failure_record(held.last_failure) if held.HasField("last_failure") else None
            ),
        }
    )
    return record


def render_list_json(held: list[pb.HeldRequest], has_more: bool, as_of: datetime) -> str:
    """`{"as_of", "data": [...], "has_more"}`, the oldest request first."""
    return (
        json.dumps(
            {
                "as_of": _iso(as_of),
                "data": [held_record(one, as_of=as_of) for one in held],
                "has_more": has_more,
            }
        )
        + "\n"
    )


def age(seconds: float) -> str:
    """A duration in its two largest units: `45s`, `14m05s`, `3h12m`, `2d03h`."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _about(held: pb.HeldRequest) -> str:
    """The object the request is about, the most precise first: a refund, a charge, an intent."""
    for name in ("refund", "charge", "payment_intent"):
        if held.HasField(name):
            return str(getattr(held, name))
    return "-"


def _request(held: pb.HeldRequest) -> str:
    return held.request_id if held.HasField("request_id") else "-"


def _failure_line(failure: pb.HeldRequestFailure) -> str:
    return f"{failure.code}: {failure.message}"


def render_table(
    held: list[pb.HeldRequest], has_more: bool, as_of: datetime, older_than_minutes: int
) -> str:
    """One line per request, the oldest first, then its latest failure indented below it."""
    if not held:
        return f"no request unfinished for {older_than_minutes} minutes or more\n"
    header = (
        f"{'age':<8}  {'account':<30}  {'endpoint':<28}  {'recovery point':<28}  "
        f"{'tries':>5}  {'last failure (UTC)':<19}  {'about':<30}  {'request':<30}  key"
    )
    lines = [header, "-" * len(header)]
    for one in held:
        failed = (
            _time(one.last_failure.at).strftime("%Y-%m-%d %H:%M:%S")
            if one.HasField("last_failure")
            else "-"
        )
        point = one.recovery_point + (" (running)" if one.in_progress else "")
        lines.append(
            f"{age((as_of - _time(one.created)).total_seconds()):<8}  {one.account_id:<30}  "
            f"{one.endpoint:<28}  {point:<28}  {one.completer_attempts:>5}  {failed:<19}  "
            f"{_about(one):<30}  {_request(one):<30}  {one.idempotency_key}"
        )
        if one.HasField("last_failure"):
            lines.append(f"          {_failure_line(one.last_failure)}")
    if has_more:
        lines.append(f"(the oldest {len(held)}; more are held: --limit up to {MAX_LIST_LIMIT})")
    return "\n".join(lines) + "\n"


def render_retry(outcome: str, account_id: str, key: str, held: pb.HeldRequest | None) -> str:
    # A key remit made up (a request sent without one, an inner call of remit's own,
    # `remit.payments.requests`) is one no client holds: no client's retry comes under it.
    made_up = client_key_of(key) is None
    if outcome == "dropped":
        afterwards = (
            "no client holds its key (remit made it up), so no retry comes back to it"
            if made_up
            else "its client's retry with the key starts afresh"
        )
        return (
            f"dropped: the request under {key} of {account_id} had never got past started and "
            f"sent nothing; {afterwards}\n"
        )
    assert held is not None
    what = f"{held.endpoint} under {key} of {account_id}"
    if outcome == "finished":
        answer = "its client's retry with the key gets the stored answer"
        if made_up:
            # Named by what it is about and the request that began it, as the key names nothing.
            names = [name for name in (_about(held), _request(held)) if name != "-"]
            look = f": look at {', '.join(names)}" if names else ""
            answer = (
                "no client holds its key (remit made it up), so no retry gets the stored "
                f"answer{look}"
            )
        return f"finished: {what}; {answer} (tries: {held.completer_attempts})\n"
    failure = _failure_line(held.last_failure) if held.HasField("last_failure") else "-"
    return (
        f"still held: {what}, at {held.recovery_point} after {held.completer_attempts} tries; "
        f"{failure}\n"
    )
