"""Key versions declared lost for good (`remit vault declare-key-version-lost`).

A card whose data key is wrapped under a key version missing from the key ring is refused as
`vault_key_missing`, which the core takes for a wait: the version may come back (a vault process
whose key file lags a rotation, a key file restored from a backup), so it holds the payment
attempt at `attempt_created` and its client and the completer retry. When the version never
will come back (removed too early, and no copy of the key file holds it), nothing could end
those attempts. An operator's declaration, kept in the vault database with who made it and
when, tells the vault so: a card under a version declared lost is refused as under a retired
one (`vault_key_retired`), which the core ends with what the network holds for the attempt's
reference (`remit.payments.network.vault_will_not_open_card`), after the vault's own check that
no forward of that reference it sent can still commit at the acquirer.

The declaration is consulted only when the key ring lacks the version: a key ring that has it
(the key file restored after all) opens the card as before. And it is refused for a version the
key ring still holds, whose cards are retired and removed through rotation, not declared lost.
"""

from dataclasses import dataclass
from typing import Final

from remit.core.errors import ErrorKind, RemitError, invalid
from remit.core.told_text import quoted_told
from remit.vault.crypto import KEY_MISSING_CODE, KEY_RETIRED_CODE, KeyRing, KeyUnavailableError
from remit.vault.domain import LostKeyVersion

# The code of the refusal to declare lost a version the key ring still holds.
KEY_PRESENT_CODE: Final = "vault_key_present"


def declaration_refusal(ring: KeyRing, version: int) -> RemitError | None:
    """Why key version `version` may not be declared lost in `ring`'s vault, if it may not."""
    if ring.never_had(ring.name, version):
        # Above the current version: not numbered yet here (this vault process's key file may
        # lag a rotation another one made), so nothing says it is lost. Or below 1.
        return invalid(
            f"Key {ring.name!r} has no version {version}: its versions are numbered from 1 to "
            f"the current version, {ring.current_version}, in this vault's key file.",
            "version",
        )
    if version in ring.versions:
        return RemitError(
            message=f"Key version {version} is still in the vault's key file: it is not lost. "
            "To stop using it, rotate the key, re-wrap and retire it (rotate-key --wait, "
            "retire-keys), then remove it (remove-key-version).",
            kind=ErrorKind.FAILED_PRECONDITION,
            code=KEY_PRESENT_CODE,
            param="version",
        )
    return None


def declared_missing(error: KeyUnavailableError) -> bool:
    """Whether `error` is a version missing from the key ring, which a declaration can turn
    into a refusal as retired (a retired one is one already)."""
    return error.code == KEY_MISSING_CODE


@dataclass(eq=False)
class LostKeyError(KeyUnavailableError):
    """A card's key version is missing here and was declared lost: refused as retired."""


def lost_key(error: KeyUnavailableError, declared: LostKeyVersion) -> LostKeyError:
    """The refusal of a card under `declared`'s version: as under a retired version, under its
    code (`vault_key_retired`), naming the declaration. Nothing of the card is in it. Who
    declared it is quoted: a declaration recorded before the vault refused line breaks in who
    made it keeps them, and the refusal is logged and shown where a line break in it would
    pass for another line."""
    return LostKeyError(
        message=f"Key version {error.key_version} was declared lost by "
        f"{quoted_told(declared.declared_by)} "
        f"at {declared.declared_at.isoformat()}.",
        kind=ErrorKind.FAILED_PRECONDITION,
        error_type="api_error",
        code=KEY_RETIRED_CODE,
        key_name=error.key_name,
        key_version=error.key_version,
    )


def declaration_note(error: KeyUnavailableError) -> str:
    """What a refusal of a card for want of its key version adds when the version was
    declared lost (who, when): why a version that is merely missing is refused as retired."""
    return f" {error.message}" if isinstance(error, LostKeyError) else ""
