"""Tenants and their API keys: the accounts half of the glossary store.

Keys are 256-bit random tokens shown once; only their SHA-256 is stored, and a lookup compares
in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from glossary.database import Database, new_id, now, utc
from glossary.tables import api_keys, metadata, tenants
from kernel.errors import ErrorCode, RasstError

DEFAULT_TENANT = "default"
API_KEY_PREFIX = "rasst_"


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    tenant_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def hash_api_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast unsalted hash is enough: there
    # is nothing to brute-force that would be cheaper than guessing the key.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class TenantAccounts(Database):
    def create_schema(self) -> None:
        metadata.create_all(self.engine)
        with self._write() as conn:
            exists = conn.execute(select(tenants.c.id).where(tenants.c.id == DEFAULT_TENANT))
            if exists.first() is None:
                conn.execute(
                    insert(tenants).values(id=DEFAULT_TENANT, name="default", created_at=now())
                )

    def create_tenant(self, name: str, tenant_id: str | None = None) -> TenantRecord:
        record = TenantRecord(tenant_id or new_id("tn_"), name, now())
        with self._write() as conn:
            if conn.execute(select(tenants.c.id).where(tenants.c.id == record.id)).first():
                raise RasstError(ErrorCode.CONFLICT, f"tenant {record.id!r} already exists")
            conn.execute(
                insert(tenants).values(id=record.id, name=name, created_at=record.created_at)
            )
        return record

    def list_tenants(self) -> list[TenantRecord]:
        with self._read() as conn:
            rows = conn.execute(select(tenants).order_by(tenants.c.created_at, tenants.c.id))
            return [TenantRecord(r.id, r.name, utc(r.created_at)) for r in rows]

    def create_api_key(self, tenant_id: str) -> tuple[ApiKeyRecord, str]:
        """A new key for the tenant; the plain key is returned once and never stored."""
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKeyRecord(new_id("key_"), tenant_id, key[:12], now(), None)
        with self._write() as conn:
            if conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id)).first() is None:
                raise RasstError(ErrorCode.NOT_FOUND, f"no tenant {tenant_id!r}")
            conn.execute(
                insert(api_keys).values(
                    id=record.id,
                    tenant_id=tenant_id,
                    key_hash=hash_api_key(key),
                    prefix=record.prefix,
                    created_at=record.created_at,
                )
            )
        return record, key

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(api_keys)
                .where(api_keys.c.tenant_id == tenant_id)
                .order_by(api_keys.c.created_at)
            )
            return [
                ApiKeyRecord(
                    r.id,
                    r.tenant_id,
                    r.prefix,
                    utc(r.created_at),
                    utc(r.revoked_at) if r.revoked_at else None,
                )
                for r in rows
            ]

    def revoke_api_key(self, tenant_id: str, key_id: str) -> None:
        with self._write() as conn:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.tenant_id == tenant_id)
                .where(api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )
            if result.rowcount == 0:
                raise RasstError(ErrorCode.NOT_FOUND, f"no active key {key_id!r} for this tenant")

    def tenant_for_api_key(self, key: str) -> str | None:
        wanted = hash_api_key(key)
        with self._read() as conn:
            row = conn.execute(
                select(api_keys.c.tenant_id, api_keys.c.key_hash)
                .where(api_keys.c.key_hash == wanted)
                .where(api_keys.c.revoked_at.is_(None))
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, wanted):
            return None
        return str(row.tenant_id)
