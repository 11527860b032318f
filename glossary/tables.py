"""The relational schema of the glossary store (SQLAlchemy Core, portable SQLite/PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    # sha256 of the key: a stolen database does not hand out working keys.
    Column("key_hash", String(64), nullable=False, unique=True),
    # First characters of the key, so an operator can tell keys apart.
    Column("prefix", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_api_keys_tenant", "tenant_id"),
)

glossaries = Table(
    "glossaries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("source_language", String(35), nullable=False),
    Column("version", Integer, nullable=False),
    Column("entry_count", Integer, nullable=False),
    Column("target_languages", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_glossaries_tenant", "tenant_id", "created_at"),
)

glossary_entries = Table(
    "glossary_entries",
    metadata,
    Column(
        "glossary_id",
        String(64),
        ForeignKey("glossaries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("position", Integer, primary_key=True),
    # Terms can be 1024 characters of CJK, too long for a PostgreSQL btree key:
    # uniqueness and look-ups go through a hash of the source.
    Column("source_hash", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("targets", JSON, nullable=False),
    Column("note", Text, nullable=True),
    Column("priority", Integer, nullable=False, default=0),
    UniqueConstraint("glossary_id", "source_hash", name="uq_entries_source"),
)

# A tenant's term memory: glossaries grouped as slices with a domain label. Base slices
# are always on in an automatic ("term_memory": "auto") session; domain slices are routed.
term_memory_slices = Table(
    "term_memory_slices",
    metadata,
    Column(
        "glossary_id",
        String(64),
        ForeignKey("glossaries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tenant_id", String(64), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("domain", String(64), nullable=False),
    Column("base", Boolean, nullable=False, default=False),
)
