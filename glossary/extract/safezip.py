"""Reading members of an untrusted ZIP archive (a PPTX upload) within fixed limits.

Defences, in order:

- before :mod:`zipfile` parses anything, the end-of-central-directory record
  must declare at most ``max_zip_entries`` entries and a central directory of
  at most ``max_zip_directory_bytes`` (zipfile reads exactly that many bytes
  and builds one object per entry), and ZIP64 archives are refused;
- an entry is read only if its declared size is within ``max_zip_member_bytes``
  and its declared compression ratio within ``max_zip_ratio``;
- the read itself is bounded: decompression stops as soon as the output passes
  the per-entry cap, the ratio or the request's remaining total, whatever the
  headers claim;
- encrypted entries are refused, and every zipfile/zlib failure is a
  ``validation_failed`` for the client, never a 500.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from glossary.extract.model import ExtractionLimits, document_error
from kernel.errors import ErrorCode, RasstError

_EOCD = b"PK\x05\x06"
_EOCD_FORMAT = "<4s4H2LH"
_EOCD_SIZE = struct.calcsize(_EOCD_FORMAT)
_MAX_COMMENT = 0xFFFF
_READ_CHUNK = 64 * 1024
# Failures zipfile and zlib raise on damaged archives.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


class SafeZip:
    def __init__(self, data: bytes, limits: ExtractionLimits, filename: str | None) -> None:
        self._limits = limits
        self._filename = filename
        self._check_directory(data)
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (*_DAMAGED, struct.error, RuntimeError):
            raise self._damaged("not a readable ZIP archive") from None
        if len(infos) > limits.max_zip_entries:
            raise self._bomb(f"more than {limits.max_zip_entries} entries in the archive")
        self._infos = {info.filename: info for info in infos}
        self._read_total = 0

    def names(self) -> list[str]:
        return list(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._infos

    def read(self, name: str) -> bytes:
        limits = self._limits
        info = self._infos[name]
        if info.flag_bits & 0x1:
            raise document_error(
                ErrorCode.UNSUPPORTED_FORMAT,
                f"{self._filename or 'the archive'} is password-protected",
                filename=self._filename,
                reason="encrypted_archive",
            )
        if info.file_size > limits.max_zip_member_bytes:
            raise self._bomb(f"{name} would expand to {info.file_size} bytes")
        if self._ratio_exceeded(info.file_size, info.compress_size):
            raise self._bomb(f"{name} is compressed {info.file_size / info.compress_size:.0f}:1")
        cap = min(limits.max_zip_member_bytes, limits.max_zip_total_bytes - self._read_total)
        chunks: list[bytes] = []
        size = 0
        try:
            with self._zip.open(info) as stream:
                while chunk := stream.read(_READ_CHUNK):
                    size += len(chunk)
                    if size > cap:
                        raise self._bomb(f"more than {cap} bytes to decompress")
                    if self._ratio_exceeded(size, info.compress_size):
                        raise self._bomb(f"{name} expands more than {limits.max_zip_ratio:.0f}:1")
                    chunks.append(chunk)
        except RasstError:
            raise
        except (*_DAMAGED, RuntimeError):
            raise self._damaged(f"cannot read {name} from the archive") from None
        self._read_total += size
        return b"".join(chunks)

    def _ratio_exceeded(self, size: int, compressed: int) -> bool:
        limits = self._limits
        return size > limits.zip_ratio_floor_bytes and size > limits.max_zip_ratio * max(
            compressed, 1
        )

    def _check_directory(self, data: bytes) -> None:
        start = data.rfind(_EOCD, max(0, len(data) - _EOCD_SIZE - _MAX_COMMENT))
        if start < 0 or len(data) - start < _EOCD_SIZE:
            raise self._damaged("not a ZIP archive (no end-of-directory record)")
        _, _, _, _, entries, directory_size, _, _ = struct.unpack_from(_EOCD_FORMAT, data, start)
        if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
            raise self._damaged("ZIP64 archives are not accepted")
        if entries > self._limits.max_zip_entries:
            raise self._bomb(f"the archive declares {entries} entries")
        if directory_size > self._limits.max_zip_directory_bytes:
            raise self._bomb(f"the archive's directory is {directory_size} bytes")

    def _damaged(self, message: str) -> RasstError:
        return document_error(
            ErrorCode.VALIDATION_FAILED,
            f"{self._filename or 'the file'} is damaged: {message}",
            filename=self._filename,
            reason="malformed_archive",
        )

    def _bomb(self, message: str) -> RasstError:
        return document_error(
            ErrorCode.LIMIT_EXCEEDED,
            f"{self._filename or 'the archive'} exceeds the decompression limits ({message})",
            filename=self._filename,
            reason="zip_limits",
        )
