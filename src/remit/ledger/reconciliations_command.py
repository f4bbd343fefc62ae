"""`remit reconciliations`: the stored reconciliation runs, the latest to finish first, through the
core's LedgerService.ListReconciliations, as a table or, with `--json`, as one JSON object.

Each run shows the day and scope it covered (an account, or every account), when it started and
finished, whether it was partial (the day was not over) or superseded by a later run of the same
day and scope, and how many items it counted of each status. Listing finds nothing wrong of its
own: it exits 0 whatever the runs found (`remit reconcile`'s exit code says that, run by run).
Exit codes: `remit.command_exits`.
"""

import json
from datetime import UTC, datetime
from typing import Final, TextIO

import grpc

from remit.command_exits import EXIT_CLEAN, CommandRefusedError
from remit.config import PlatformConfig
from remit.grpcutil.call_failures import call_failed
from remit.grpcutil.internal_auth import InternalAccess, internal_sync_channel
from remit.ledger.reconciliation_runs import MAX_LIST_LIMIT
from remit_api.ledger.v1 import ledger_pb2 as pb
from remit_api.ledger.v1 import ledger_pb2_grpc

CALL_TIMEOUT_S: Final = 10.0
# The statuses a run counts, in the order `remit reconcile` sums them up, with their counts'
# fields in the message.
COUNTED: Final = (
    ("matched", "matched_count"),
    ("missing_in_ledger", "missing_in_ledger_count"),
    ("missing_at_acquirer", "missing_at_acquirer_count"),
    ("amount_mismatch", "amount_mismatch_count"),
    ("fee_mismatch", "fee_mismatch_count"),
    ("outcome_mismatch", "outcome_mismatch_count"),
)
EVERY_ACCOUNT: Final = "every account"


def reconciliations_command(
    config: PlatformConfig, *, limit: int, as_json: bool, out: TextIO
) -> int:
    """List the `limit` latest runs on `out`. A refusal, the core's included, is raised as
    `CommandRefusedError`, a failure that may pass as `CommandTemporaryFailureError`
    (`remit.command_exits`)."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise CommandRefusedError(f"--limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
    with internal_sync_channel(config.core.target, InternalAccess.of(config)) as channel:
        try:
            reply: pb.ListReconciliationsResponse = ledger_pb2_grpc.LedgerServiceStub(
                channel
            ).ListReconciliations(
                pb.ListReconciliationsRequest(limit=limit), timeout=CALL_TIMEOUT_S
            )
        except grpc.RpcError as error:
            raise call_failed(error, "core", config.core.target) from None
    runs = list(reply.data)
    out.write(render_json(runs, reply.has_more) if as_json else render_table(runs, reply.has_more))
    return EXIT_CLEAN


def _started(run: pb.Reconciliation) -> datetime | None:
    # Unset for runs stored before remit recorded when a run began.
    return run.started.ToDatetime(tzinfo=UTC) if run.HasField("started") else None


def _finished(run: pb.Reconciliation) -> datetime:
    return run.created.ToDatetime(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def run_record(run: pb.Reconciliation) -> dict[str, object]:
    return {
        "id": run.id,
        "date": run.date,
        "account_id": run.account_id if run.HasField("account_id") else None,
        "started": _iso(_started(run)),
        "finished": _iso(_finished(run)),
        "partial": run.partial,
        "superseded_by": run.superseded_by if run.HasField("superseded_by") else None,
        "counts": {status: getattr(run, field) for status, field in COUNTED},
    }


def render_json(runs: list[pb.Reconciliation], has_more: bool) -> str:
    """`{"data": [...], "has_more"}`, the latest run first, as the API lists objects."""
    return json.dumps({"data": [run_record(run) for run in runs], "has_more": has_more}) + "\n"


def _cell(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def render_table(runs: list[pb.Reconciliation], has_more: bool) -> str:
    """One line per run, the latest first; times in UTC."""
    if not runs:
        return "no reconciliation runs stored\n"
    header = (
        f"{'date':<10}  {'scope':<30}  {'started (UTC)':<19}  {'finished (UTC)':<19}  "
        f"{'partial':<7}  {'superseded by':<30}  "
        + "  ".join(status for status, _ in COUNTED)
        + "  id"
    )
    lines = [header, "-" * len(header)]
    for run in runs:
        scope = run.account_id if run.HasField("account_id") else EVERY_ACCOUNT
        superseded = run.superseded_by if run.HasField("superseded_by") else "-"
        counts = "  ".join(f"{getattr(run, field):>{len(status)}}" for status, field in COUNTED)
        lines.append(
            f"{run.date:<10}  {scope[:30]:<30}  {_cell(_started(run)):<19}  "
            f"{_cell(_finished(run)):<19}  {'yes' if run.partial else 'no':<7}  "
            f"{superseded:<30}  {counts}  {run.id}"
        )
    if has_more:
        lines.append(
            f"(the latest {len(runs)}; older runs are stored: --limit up to {MAX_LIST_LIMIT})"
        )
    return "\n".join(lines) + "\n"
