"""API-key authentication: which tenant is calling, and whether the caller is the admin."""

from __future__ import annotations

import hmac

from glossary.store import GlossaryStore
from glossary.tenants import DEFAULT_TENANT
from kernel.errors import ErrorCode, RasstError


def authenticate(store: GlossaryStore, api_key: str | None, *, auth_enabled: bool) -> str:
    """The tenant id of ``api_key``; ``"default"`` when auth is disabled.

    Raises RasstError UNAUTHORIZED for a missing, unknown or revoked key.
    """
    if not auth_enabled:
        return DEFAULT_TENANT
    if not api_key:
        raise RasstError(
            ErrorCode.UNAUTHORIZED,
            "an API key is required: 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
        )
    tenant = store.tenant_for_api_key(api_key)
    if tenant is None:
        raise RasstError(ErrorCode.UNAUTHORIZED, "unknown or revoked API key")
    return tenant


def check_admin(provided: str | None, admin_key: str | None) -> None:
    if not admin_key:
        raise RasstError(
            ErrorCode.FORBIDDEN, "the admin API is disabled: set RASST_ADMIN_KEY to enable it"
        )
    if not provided or not hmac.compare_digest(
        provided.encode("utf-8", "surrogatepass"), admin_key.encode()
    ):
        raise RasstError(ErrorCode.UNAUTHORIZED, "admin key required")


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return x_api_key.strip() if x_api_key and x_api_key.strip() else None
