"""API versioning: render latest-schema JSON at the version a client or webhook endpoint is
pinned to, and upgrade old requests to the latest schema. The changes themselves live in
`versions/vYYYY_MM_DD.py`; docs/versioning.md explains how to add one.

Entry points:
- `render(json, version, related)`: a response body (resource, list, event) at `version`.
- `render_event(event_json, version, related)`: an event as delivered at `version` (sets
  `api_version`); what the webhook worker calls for each endpoint.
- `render_error(status, body, version)`: an error response at `version` (status and fields).
- `upgrade_request(operation, form, version)`: old parameters rewritten to the latest schema.
- `gather_related(json, version, fetch)`: the related lists and objects old versions show,
  fetched before rendering (only needed for versions before 2022-11-15), one call per need
  and level however many objects the body holds.
"""

from remit.versioning.change import (
    ErrorResponse,
    Need,
    RelatedDataMissingError,
    RelatedList,
    RelatedObject,
    RelatedPage,
    RequestRefusedError,
    VersionChange,
)
from remit.versioning.internal import reads_internal_fields
from remit.versioning.operations import operation_key
from remit.versioning.registry import load, plan
from remit.versioning.related import MAX_EMBEDDED, Fetch, FetchOne, gather_related, one_by_one
from remit.versioning.render import (
    NO_RELATED,
    Related,
    render,
    render_error,
    render_event,
    upgrade_request,
)

__all__ = [
    "MAX_EMBEDDED",
    "NO_RELATED",
    "ErrorResponse",
    "Fetch",
    "FetchOne",
    "Need",
    "Related",
    "RelatedDataMissingError",
    "RelatedList",
    "RelatedObject",
    "RelatedPage",
    "RequestRefusedError",
    "VersionChange",
    "gather_related",
    "load",
    "one_by_one",
    "operation_key",
    "plan",
    "reads_internal_fields",
    "render",
    "render_error",
    "render_event",
    "upgrade_request",
]
