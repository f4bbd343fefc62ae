"""Role credentials of remit's processes, and what each role may call."""

import re
from pathlib import Path

import pytest

import remit.rest
from remit.config import CREDENTIAL_ENV, TOKEN_ENV, environment_for, from_env
from remit.grpcutil.internal_roles import (
    ADMIN,
    API,
    CORE,
    ROLES,
    VAULT,
    WORKER,
    RoleVerifier,
    role_credential,
)
from remit.grpcutil.role_permissions import (
    ACCOUNTS,
    ACQUIRER_SERVICE,
    ALLOWED,
    LEDGER,
    PAYMENTS,
    RADAR,
    VAULT_SERVICE,
    WEBHOOKS,
    may_call,
)
from remit_api.accounts.v1 import accounts_pb2
from remit_api.acquirer.v1 import acquirer_pb2
from remit_api.ledger.v1 import ledger_pb2
from remit_api.payments.v1 import payments_pb2
from remit_api.radar.v1 import radar_pb2
from remit_api.vault.v1 import vault_pb2
from remit_api.webhooks.v1 import webhooks_pb2

TOKEN = "the-platform-token-0123456789abcdefghijklmnopq"

_SERVICES = {
    service.full_name: {method.name for method in service.methods}
    for module in (
        accounts_pb2, acquirer_pb2, ledger_pb2, payments_pb2, radar_pb2, vault_pb2, webhooks_pb2
    )
    for service in module.DESCRIPTOR.services_by_name.values()
}  # fmt: skip


def test_each_role_has_a_credential_of_its_own_that_proves_it() -> None:
    verifier = RoleVerifier(TOKEN)
    credentials = {role: role_credential(TOKEN, role) for role in ROLES}
    assert len(set(credentials.values())) == len(ROLES)
    for role, credential in credentials.items():
        assert credential.startswith(f"{role}.")
        assert TOKEN not in credential
        assert verifier.role_of(credential) == role
    assert verifier.role_of(TOKEN) == ADMIN
    # Under another platform's token the same role's credential proves nothing.
    assert RoleVerifier("another-platform-token").role_of(credentials[API]) is None


@pytest.mark.parametrize(
    "presented",
    [
        None,
        "",
        "admin",
        "admin.",
        # A role's name on another role's MAC.
        "admin." + role_credential(TOKEN, API).partition(".")[2],
        role_credential(TOKEN, API)[:-1],
        role_credential(TOKEN, API) + "x",
        "stranger." + role_credential(TOKEN, API).partition(".")[2],
    ],
)
def test_a_forged_or_unknown_credential_proves_no_role(presented: str | None) -> None:
    assert RoleVerifier(TOKEN).role_of(presented) is None


def test_an_unknown_role_has_no_credential() -> None:
    with pytest.raises(ValueError, match="stranger"):
        role_credential(TOKEN, "stranger")


def test_every_method_a_role_may_call_exists() -> None:
    for role, services in ALLOWED.items():
        assert role in ROLES
        for service, methods in services.items():
            assert service in _SERVICES, service
            assert methods <= _SERVICES[service], (role, service, methods - _SERVICES[service])


# The REST facade's stubs (`remit.rest.dependencies.Dependencies`) and the services they reach.
_FACADE_STUBS = {
    "accounts": ACCOUNTS,
    "payments": PAYMENTS,
    "webhooks": WEBHOOKS,
    "ledger": LEDGER,
    "radar": RADAR,
    "vault": VAULT_SERVICE,
}
_STUB_CALL = re.compile(r"\b(accounts|payments|webhooks|ledger|radar|vault)\.([A-Z]\w+)\b")


def _facade_calls() -> set[tuple[str, str]]:
    calls = set()
    for path in Path(remit.rest.__file__).parent.rglob("*.py"):
        for stub, method in _STUB_CALL.findall(path.read_text()):
            calls.add((_FACADE_STUBS[stub], method))
    return calls


def test_the_api_role_may_make_every_call_the_rest_facade_makes() -> None:
    calls = _facade_calls()
    # The scan finds the calls (an empty scan would prove nothing).
    assert (ACCOUNTS, "AuthenticateApiKey") in calls
    assert (VAULT_SERVICE, "TokenizeCard") in calls
    assert len(calls) > 50
    refused = sorted(
        f"{service}/{method}"
        for service, method in calls
        if not may_call(API, f"/{service}/{method}")
    )
    assert refused == []


# The modules whose gRPC calls the core, worker and vault processes make, relative to the
# `remit` package (the REST facade's, the api role's, are all of `remit.rest`, above).
_CALL_SITES = {
    CORE: (
        "payments/network.py",  # the payment path (`remit.payments.wiring`)
        "payment_methods/vault_client.py",
        "ledger/service.py",  # operation lookups, for reconciliation (`remit.core_process`)
        "ledger/settlement_report.py",  # settlement reports, for reconciliation
    ),
    WORKER: ("payments/network.py", "payment_methods/vault_client.py"),
    VAULT: ("vault/forwarding.py",),
}
# Calls a call-site module holds for one role only: the vault sweep runs in the worker alone,
# and a payment method's update, which changes its card's details at the vault, in the core.
_ONLY_BY = {
    (VAULT_SERVICE, "ListCardsCreatedBefore"): WORKER,
    (VAULT_SERVICE, "UpdateCardDetails"): CORE,
}
# Modules that build stubs for the call sites above, and make no call themselves.
_STUB_BUILDERS = {"core_process.py", "payments/wiring.py"}
# The command line's, which calls as the admin, with the platform token itself.
_ADMIN_TOOLS = {
    "cli.py",
    "accounts/key_commands.py",
    "ledger/cli.py",
    "ledger/reconciliations_command.py",
    "payments/held_requests_command.py",
    "radar/tools.py",
    "vault/admin.py",
    "webhooks/tools.py",
}
_PACKAGE = Path(remit.rest.__file__).parent.parent
_STUB_REFERENCE = re.compile(r"\b(\w+)_pb2_grpc\.(\w+Service)(?:Async)?Stub\b")
_METHOD_CALL = re.compile(r"\.([A-Z]\w+)\(")


def _services_named_in(source: str) -> set[str]:
    return {
        name
        for package, service in _STUB_REFERENCE.findall(source)
        for name in _SERVICES
        if name == f"remit_api.{package}.v1.{service}"
    }


def _calls_in(relative: str) -> set[tuple[str, str]]:
    """The gRPC calls a module makes: every method of a service whose stub it names that it
    calls by name."""
    source = (_PACKAGE / relative).read_text()
    called = set(_METHOD_CALL.findall(source))
    return {
        (service, method)
        for service in _services_named_in(source)
        for method in _SERVICES[service] & called
    }


@pytest.mark.parametrize("role", sorted(_CALL_SITES))
def test_each_calling_process_role_may_make_every_call_its_code_makes(role: str) -> None:
    calls = {call for module in _CALL_SITES[role] for call in _calls_in(module)}
    # The scan finds the calls (an empty scan would prove nothing).
    assert len(calls) >= 1
    refused = sorted(
        f"{service}/{method}"
        for service, method in calls
        if _ONLY_BY.get((service, method), role) == role
        and not may_call(role, f"/{service}/{method}")
    )
    assert refused == []


def test_the_call_site_scan_finds_the_payment_paths_calls() -> None:
    assert (VAULT_SERVICE, "ForwardAuthorization") in _calls_in("payments/network.py")
    assert (ACQUIRER_SERVICE, "Capture") in _calls_in("payments/network.py")
    assert (VAULT_SERVICE, "ListCardsCreatedBefore") in _calls_in("payment_methods/vault_client.py")
    assert _calls_in("vault/forwarding.py") == {(ACQUIRER_SERVICE, "Authorize")}
    assert _calls_in("ledger/service.py") == {(ACQUIRER_SERVICE, "LookupOperation")}
    assert _calls_in("ledger/settlement_report.py") == {(ACQUIRER_SERVICE, "GetSettlementReport")}


def test_every_module_outside_the_facade_naming_a_stub_is_a_known_call_site() -> None:
    """A module that starts calling another service must be placed above, under the role of
    the process it runs in, so that its calls are checked against that role."""
    known = {module for modules in _CALL_SITES.values() for module in modules}
    known |= _STUB_BUILDERS | _ADMIN_TOOLS
    naming = {
        str(path.relative_to(_PACKAGE))
        for path in _PACKAGE.rglob("*.py")
        if not path.is_relative_to(_PACKAGE / "rest") and _STUB_REFERENCE.search(path.read_text())
    }
    assert naming - known == set()
    assert known - naming == set(), "a listed module no longer names a stub"


_ADMINISTRATIVE = [
    f"/{ACCOUNTS}/CreateApiKey",
    f"/{ACCOUNTS}/RevokeApiKey",
    f"/{ACCOUNTS}/ListApiKeys",
    f"/{ACCOUNTS}/UpdateAccountSettings",
    f"/{ACCOUNTS}/CreateAccount",
    f"/{ACCOUNTS}/UpgradeApiVersion",
    f"/{VAULT_SERVICE}/RemoveKeyVersion",
    f"/{VAULT_SERVICE}/DeclareKeyVersionLost",
    f"/{VAULT_SERVICE}/SetMinimumDecryptionVersion",
    f"/{VAULT_SERVICE}/RotateKey",
    f"/{VAULT_SERVICE}/RewrapDataKeys",
    f"/{VAULT_SERVICE}/ResealCards",
    f"/{VAULT_SERVICE}/GetKeyStatus",
    f"/{VAULT_SERVICE}/ListAuditEvents",
    f"/{WEBHOOKS}/RedeliverFailedEvents",
    f"/{LEDGER}/VerifyLedger",
    f"/{LEDGER}/ListReconciliations",
    f"/{PAYMENTS}/ListHeldRequests",
    f"/{PAYMENTS}/RetryHeldRequest",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
]


@pytest.mark.parametrize("method", _ADMINISTRATIVE)
def test_administrative_calls_are_the_admins_alone(method: str) -> None:
    assert [role for role in ROLES if may_call(role, method)] == [ADMIN]


@pytest.mark.parametrize(
    "method",
    [
        f"/{VAULT_SERVICE}/GetCardDetails",
        f"/{VAULT_SERVICE}/ForwardAuthorization",
        f"/{LEDGER}/PostTransaction",
        "/remit_api.acquirer.v1.AcquirerService/Authorize",
        "/remit_api.acquirer.v1.AcquirerService/Capture",
    ],
)
def test_the_api_role_reaches_no_card_details_postings_or_acquirer(method: str) -> None:
    assert not may_call(API, method)


def test_serve_hands_the_calling_processes_their_credential_and_not_the_token(
    tmp_path: Path,
) -> None:
    parent = {TOKEN_ENV: TOKEN, CREDENTIAL_ENV: role_credential(TOKEN, ADMIN), "PATH": "/bin"}
    for role in ("api", "worker"):
        env = environment_for(role, parent)
        assert TOKEN_ENV not in env
        assert env[CREDENTIAL_ENV] == role_credential(TOKEN, role)
    for role in ("core", "vault", "acquirer"):
        env = environment_for(role, parent)
        assert env[TOKEN_ENV] == TOKEN
        assert CREDENTIAL_ENV not in env  # each works out its own
    # Given a credential, a process does not pick the token up from the data directory.
    (tmp_path / "internal-token").write_text(TOKEN)
    given = from_env({"REMIT_DATA_DIR": str(tmp_path), CREDENTIAL_ENV: "api.mac"})
    assert given.internal_token is None
    assert given.internal_credential == "api.mac"
    assert given.acting_as(ADMIN).internal_credential == "api.mac"
    assert "api.mac" not in repr(given)
    found = from_env({"REMIT_DATA_DIR": str(tmp_path)})
    assert found.internal_token == TOKEN
    assert found.acting_as("worker").internal_credential == role_credential(TOKEN, "worker")
