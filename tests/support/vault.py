"""A real vault (service, gRPC server, vault database) inside the test process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass

import grpc
import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.vault.crypto import CvcKey, KeyRing, SealedCard, SealFormat
from remit.vault.forwarding import grpc_destinations
from remit.vault.grpc import VaultServicer
from remit.vault.keystore import FileKeyStore, KeyStore
from remit.vault.service import VaultService
from remit.vault.tables import vault_metadata
from remit_api.vault.v1 import vault_pb2_grpc


@dataclass
class RunningVault:
    service: VaultService
    target: str
    channel: grpc.aio.Channel

    @property
    def stub(self) -> vault_pb2_grpc.VaultServiceAsyncStub:
        return vault_pb2_grpc.VaultServiceStub(self.channel)


@asynccontextmanager
async def running_vault(
    engine: AsyncEngine, keys: KeyStore, allowlist: Mapping[str, str], clock: Clock | None = None
) -> AsyncIterator[RunningVault]:
    service = VaultService(engine, keys, grpc_destinations(allowlist), clock=clock)
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    vault_pb2_grpc.add_VaultServiceServicer_to_server(VaultServicer(service), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    target = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(target)
    try:
        yield RunningVault(service, target, channel)
    finally:
        await channel.close()
        await server.stop(0)
        await service.close()


class ProcessDiedError(Exception):
    """The vault process dying where it is."""


@dataclass
class DyingOnceTheKeyFileChanged:
    """The key store of a vault process that dies just after its key file changed: before
    it records anything more, or commits the transaction it is in."""

    store: FileKeyStore
    writable: bool = True

    def load(self) -> KeyRing:
        return self.store.load()

    def save(self, ring: KeyRing) -> None:
        self.store.save(ring)
        raise ProcessDiedError

    def save_cvc_keys(self, cvc_keys: Mapping[int, CvcKey]) -> None:
        self.store.save_cvc_keys(cvc_keys)
        raise ProcessDiedError

    def locked(self) -> AbstractContextManager[None]:
        return self.store.locked()


# The sealed columns of a card, and a byte offset inside each that every sealed value has.
_SEALED_BYTE = {"number_ciphertext": 19, "wrapped_data_key": 20}


async def damage_sealed_card(
    db: AsyncConnection, token: str, column: str = "number_ciphertext"
) -> None:
    """Flip every bit of one byte of a card's sealed number or wrapped data key, as corruption
    would (setting it to a fixed value would leave it unchanged whenever it held that value)."""
    at = _SEALED_BYTE[column]
    await db.execute(
        text(
            f"UPDATE cards SET {column} = set_byte({column}, {at}, "  # noqa: S608 (fixed names)
            f"get_byte({column}, {at}) # 255) WHERE token = :t"
        ),
        {"t": token},
    )


async def empty_vault_database(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        names = ", ".join(f'"{table}"' for table in vault_metadata.tables)
        await db.execute(text(f"TRUNCATE {names}"))


async def dump_database(engine: AsyncEngine) -> str:
    """Every row of every table as text, like a plain pg_dump's data section."""
    async with engine.connect() as db:
        tables = [
            row[0]
            for row in await db.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        ]
        lines = []
        for table in tables:
            query = text(f'SELECT t::text FROM "{table}" t')  # noqa: S608 (names from pg_tables)
            for row in await db.execute(query):
                lines.append(f"{table}: {row[0]}")
    return "\n".join(lines)


def cvc_sealed_before_cvc_keys(
    ring: KeyRing, token: str, card: SealedCard, cvc: str, nonce: bytes | None = None
) -> bytes:
    """`cvc` sealed for `card` as the vault sealed CVCs before CVC keys: under the card's data
    key, the nonce then the ciphertext. Written out here, apart from the vault's code, as that
    format was, so that a change to the code cannot change what it is checked against."""
    wrapped = card.wrapped_data_key
    data_key = AESGCM(ring.versions[card.kek_version].material).decrypt(
        wrapped[:12],
        wrapped[12:],
        f"remit-vault/data-key/{token}/{card.kek_name}/{card.kek_version}".encode(),
    )
    nonce = os.urandom(12) if nonce is None else nonce
    return nonce + AESGCM(data_key).encrypt(
        nonce, cvc.encode(), f"remit-vault/cvc/{token}".encode()
    )


def sealed_token_bound(
    ring: KeyRing, token: str, number: str, cvc: str | None = None, cvc_key: CvcKey | None = None
) -> SealedCard:
    """`number` (and `cvc`, under `cvc_key`) sealed as the vault sealed cards before vault
    migration 0006, bound to the token alone, under a fresh data key wrapped under the current
    KEK version. Written out here, apart from the vault's code, as that format was."""
    kek = ring.current
    data_key = os.urandom(32)

    def seal(key: bytes, plaintext: bytes, associated: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, associated.encode())

    sealed_cvc = None
    if cvc is not None:
        assert cvc_key is not None
        header = b"cvk1" + cvc_key.hour.to_bytes(4, "big")
        sealed_cvc = header + seal(
            cvc_key.material, cvc.encode(), f"remit-vault/cvc/{token}/{cvc_key.hour}"
        )
    return SealedCard(
        kek_name=ring.name,
        kek_version=kek.version,
        wrapped_data_key=seal(
            kek.material, data_key, f"remit-vault/data-key/{token}/{ring.name}/{kek.version}"
        ),
        number_ciphertext=seal(data_key, number.encode(), f"remit-vault/number/{token}"),
        cvc_ciphertext=sealed_cvc,
        seal_format=SealFormat.TOKEN_BOUND,
    )


def sealed_account_bound(
    ring: KeyRing, token: str, account_id: str, number: str, cvc: str | None = None,
    cvc_key: CvcKey | None = None,
) -> SealedCard:  # fmt: skip
    """`number` (and `cvc`, under `cvc_key`) sealed as the vault sealed cards from vault
    migration 0006 to 0008, bound to the account and token (each after its length), under a
    fresh data key wrapped under the current KEK version. Written out here, apart from the
    vault's code, as that format was."""
    kek = ring.current
    data_key = os.urandom(32)

    def associated(what: str, *parts: object) -> bytes:
        named = "".join(f"/{len(str(p))}:{p}" for p in (account_id, token, *parts))
        return f"remit-vault/v2/{what}{named}".encode()

    def seal(key: bytes, plaintext: bytes, ad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, ad)

    sealed_cvc = None
    if cvc is not None:
        assert cvc_key is not None
        header = b"cvk1" + cvc_key.hour.to_bytes(4, "big")
        sealed_cvc = header + seal(cvc_key.material, cvc.encode(), associated("cvc", cvc_key.hour))
    return SealedCard(
        kek_name=ring.name,
        kek_version=kek.version,
        wrapped_data_key=seal(
            kek.material, data_key, associated("data-key", ring.name, kek.version)
        ),
        number_ciphertext=seal(data_key, number.encode(), associated("number")),
        cvc_ciphertext=sealed_cvc,
        seal_format=SealFormat.ACCOUNT_BOUND,
    )


async def store_sealed(db: AsyncConnection, token: str, sealed: SealedCard) -> None:
    """Make the stored card `token` one sealed as `sealed`, in its format: as a vault of an
    earlier version left it."""
    await db.execute(
        text(
            "UPDATE cards SET kek_name = :name, kek_version = :version, wrapped_data_key = :key, "
            "number_ciphertext = :number, cvc_ciphertext = :cvc, seal_format = :format "
            "WHERE token = :token"
        ),
        {
            "name": sealed.kek_name,
            "version": sealed.kek_version,
            "key": sealed.wrapped_data_key,
            "number": sealed.number_ciphertext,
            "cvc": sealed.cvc_ciphertext,
            "format": sealed.seal_format.value,
            "token": token,
        },
    )


async def store_token_bound(db: AsyncConnection, token: str, sealed: SealedCard) -> None:
    """Make the stored card `token` one sealed as `sealed` (token-bound), as a vault of a
    version before migration 0006 left it."""
    assert sealed.seal_format is SealFormat.TOKEN_BOUND
    await store_sealed(db, token, sealed)


@asynccontextmanager
async def without_the_seal_format_check(engine: AsyncEngine) -> AsyncIterator[None]:
    """The vault database without vault migration 0007's constraint, as a hand-written value
    may have been put there before it; the constraint is back afterwards."""
    async with engine.begin() as db:
        await db.execute(text("ALTER TABLE cards DROP CONSTRAINT ck_cards_seal_format"))
    try:
        yield
    finally:
        async with engine.begin() as db:
            await db.execute(
                text("UPDATE cards SET seal_format = 3 WHERE seal_format NOT IN (1, 2, 3)")
            )
            await db.execute(
                text(
                    "ALTER TABLE cards ADD CONSTRAINT ck_cards_seal_format "
                    "CHECK (seal_format IN (1, 2, 3))"
                )
            )


def reseal_page_plan(url: str, query: str, values: list[object]) -> str:
    """How the database reads a re-seal's page (`query`, with `$n` parameters `values`) as
    planned for any parameters: a prepared statement may be planned once for all of them."""
    with psycopg.connect(url) as connection:
        connection.execute("SET enable_seqscan = off")
        connection.execute("SET plan_cache_mode = force_generic_plan")
        types = ", ".join("text" if isinstance(value, str) else "integer" for value in values)
        connection.execute(f"PREPARE reseal_page ({types}) AS {query}")
        arguments = sql.SQL(", ").join(sql.Literal(value) for value in values)
        rows = connection.execute(
            sql.SQL("EXPLAIN EXECUTE reseal_page({})").format(arguments)
        ).fetchall()
        connection.rollback()
    return "\n".join(str(row[0]) for row in rows)
