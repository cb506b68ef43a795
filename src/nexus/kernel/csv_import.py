"""Streaming CSV import for any service: upload to disk, map columns, validate rows, write
them in chunks from a background job, keep progress and per-row errors in the service's
own tables, offer the errors back as a CSV.

Memory stays bounded whatever the file size: the upload is streamed to a file, and a job
reads one chunk of rows at a time from a byte offset it commits with the chunk's writes.
A chunk's rows, its errors, the progress counters and the job that continues after it
commit in one transaction that first checks the offset: a crash re-runs at most the
chunk that was in flight, and a re-run has no second effect. A dry run validates and writes inside a
savepoint that is rolled back, so its counters and error report are those of a real run
(except that duplicates across chunks count as new rows).

How a service uses it (the VAS contacts import is the worked example,
`nexus.services.vas.engagement.contacts_import`):

1. Tables, in the service's own metadata and migrations::

       class ContactImport(Base, IdMixin, OrgScoped, CsvImportMixin):
           __tablename__ = "vas_contact_imports"

       class ContactImportError(Base, IdMixin, OrgScoped, CsvImportErrorMixin):
           __tablename__ = "vas_contact_import_errors"

2. A `RowHandler`: `fields` (the target fields, with aliases for automatic mapping),
   `validate(row)` (one row's values → an item, or raise `RowInvalid` naming the column
   and reason) and `write(session, import_, items, dry_run)` (store a chunk of valid
   items; return `Outcome` counts and errors for rows rejected while writing).

3. The upload route (decorate it with `nexus.kernel.http.large_body` so files larger
   than `NEXUS_MAX_BODY_BYTES` are accepted)::

       upload = await save_upload(request.stream(), import_dir(settings, "vas"), max_bytes)
       mapping = resolve_mapping(upload.header, handler.fields, given_mapping)
       imp = ContactImport(org_id=..., **upload.columns(), mapping=mapping, dry_run=...)
       session.add(imp); await session.flush()
       await start(session, imp, IMPORT_QUEUE)

4. The job (`JobHandler(IMPORT_QUEUE, job, transactional=False)`: rows are read and
   validated in a thread outside any transaction, then written in a short one)::

       async def job(job: Job, ctx: HandlerContext) -> None:
           db = ctx.runtime.db("vas")
           await run_chunk(db, job, ContactImport, ContactImportError, handler)

5. Progress: `ImportStatus.model_validate(imp)`; errors: `error_report(db, ContactImportError,
   imp)` streams `row,column,reason,<original columns>` lines.

In services mode the API process that received the upload and the worker processes read
the same file: give them a shared `NEXUS_DATA_DIR` (or run the workers on that host).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from nexus.kernel.db import Database, JSONType, UTCDateTime, utcnow
from nexus.kernel.errors import Problem
from nexus.kernel.events import Job, enqueue, job_id_for
from nexus.kernel.ids import new_id

T = TypeVar("T")

STATUSES = ("pending", "running", "completed", "failed", "canceled")
FINAL = frozenset({"completed", "failed", "canceled"})
DEFAULT_CHUNK_ROWS = 5000
DEFAULT_CHUNK_SECONDS = 2.0
MAX_COLUMNS = 200
_DELIMITERS = (",", ";", "\t", "|")


class ImportProblem(Problem):
    """The file or the mapping cannot be imported at all (422, nothing stored)."""

    status = 422
    slug = "invalid-import"


class RowInvalid(ValueError):
    """Raised by `RowHandler.validate`: this row is refused, with the column and reason."""

    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


# -- tables (mixins: each service keeps its own) ---------------------------------------------
class CsvImportMixin:
    """One import: the uploaded file, the mapping, where the job is, and its counters."""

    status: Mapped[str] = mapped_column(String(12), default="pending")
    filename: Mapped[str] = mapped_column(String(300), default="")
    path: Mapped[str] = mapped_column(String(1000))
    total_bytes: Mapped[int] = mapped_column(Integer, default=0)
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    header: Mapped[list[str]] = mapped_column(JSONType, default=list)
    mapping: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)  # field -> column
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # where the next chunk starts: byte offset in the file and the CSV record number
    byte_offset: Mapped[int] = mapped_column(Integer, default=0)
    row_number: Mapped[int] = mapped_column(Integer, default=1)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_failed: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CsvImportErrorMixin:
    """One refused row: its record number (the header is row 1), column, reason, values."""

    import_id: Mapped[str] = mapped_column(String(36))
    row: Mapped[int] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    values: Mapped[list[str]] = mapped_column(JSONType, default=list)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        from sqlalchemy import Index

        return (Index(f"ix_{cls.__tablename__}_import_row", "import_id", "row"),)  # type: ignore[attr-defined]


class ImportStatus(BaseModel):
    """Progress of an import, as the API and the CLI show it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    filename: str
    dry_run: bool
    total_bytes: int
    byte_offset: int
    rows_read: int
    rows_failed: int
    created: int
    updated: int
    unchanged: int
    mapping: dict[str, str]
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def fraction(self) -> float:
        if self.status in FINAL or not self.total_bytes:
            return 1.0 if self.status in FINAL else 0.0
        return min(1.0, self.byte_offset / self.total_bytes)


# -- the service's part ------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportField:
    name: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    description: str = ""


@dataclass
class Row:
    number: int  # CSV record number; the header is 1
    values: dict[str, str]  # mapped fields (stripped; missing columns are absent)
    extra: dict[str, str]  # the columns no field maps, by header name
    raw: list[str]


@dataclass
class RowError:
    row: int
    column: str | None
    reason: str
    values: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)


class RowHandler(Protocol, Generic[T]):
    fields: Sequence[ImportField]

    def validate(self, row: Row, import_: Any) -> T:
        """The row's item; raise `RowInvalid(column, reason)` to refuse it."""

    async def write(
        self, session: AsyncSession, import_: Any, items: list[tuple[Row, T]], dry_run: bool
    ) -> Outcome:
        """Store a chunk of valid items (dedupe, upsert); errors for rows refused here."""


# -- upload and mapping ----------------------------------------------------------------------
@dataclass
class Upload:
    path: Path
    size: int
    filename: str
    header: list[str]
    delimiter: str
    data_offset: int  # first byte after the header

    def columns(self) -> dict[str, Any]:
        """The import row's columns that describe the file."""
        return {
            "path": str(self.path),
            "filename": self.filename[:300],
            "total_bytes": self.size,
            "header": self.header,
            "delimiter": self.delimiter,
            "byte_offset": self.data_offset,
            "row_number": 2,
        }


def import_dir(data_dir: Path, service: str) -> Path:
    path = Path(data_dir) / "imports" / service
    path.mkdir(parents=True, exist_ok=True)
    return path


async def save_upload(
    chunks: AsyncIterator[bytes],
    directory: Path,
    *,
    max_bytes: int,
    filename: str = "",
    delimiter: str | None = None,
) -> Upload:
    """Stream an upload to a file in `directory` and read its header; 422/413 on a file
    that cannot be imported (the partial file is removed)."""
    path = directory / f"{new_id()}.csv"
    size = 0
    try:
        with path.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise Problem(
                        f"The file is larger than the limit of {max_bytes} bytes.",
                        status=413,
                        slug="payload-too-large",
                    )
                out.write(chunk)
        if size == 0:
            raise ImportProblem("The file is empty.", field="file")
        header, found, offset = read_header(path, delimiter)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Upload(path, size, filename, header, found, offset)


def _decode(line: bytes, first: bool) -> str:
    text = line.decode("utf-8")
    return text[1:] if first and text.startswith("\ufeff") else text


def read_header(path: Path, delimiter: str | None = None) -> tuple[list[str], str, int]:
    """The header's column names, the delimiter and the offset of the first data row."""
    with path.open("rb") as f:
        if delimiter is None:
            try:
                sample = _decode(f.readline(), True)
            except UnicodeDecodeError:
                raise ImportProblem("The file is not UTF-8 text.", field="file") from None
            delimiter = max(_DELIMITERS, key=sample.count)
        try:
            offset, record = next(iter(_Records(f, 0, delimiter)))
        except StopIteration:
            raise ImportProblem("The file has no header row.", field="file") from None
        except UnicodeDecodeError:
            raise ImportProblem("The header row is not UTF-8 text.", field="file") from None
        except csv.Error as exc:
            raise ImportProblem(f"The header row is not valid CSV: {exc}.", field="file") from None
    header = [name.strip() for name in record]
    if not any(header):
        raise ImportProblem("The header row is empty.", field="file")
    if len(header) > MAX_COLUMNS:
        raise ImportProblem(f"The file has more than {MAX_COLUMNS} columns.", field="file")
    seen: set[str] = set()
    for name in header:
        if name and name.lower() in seen:
            raise ImportProblem(f"The column {name!r} appears twice in the header.", field="file")
        seen.add(name.lower())
    return header, delimiter, offset


def resolve_mapping(
    header: list[str], fields: Sequence[ImportField], given: dict[str, str] | None = None
) -> dict[str, str]:
    """`{field: column}`: the given mapping checked against the header, and every other
    field mapped to a column of the same name or an alias (case and spaces ignored)."""

    def key(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    by_key = {key(name): name for name in header if name}
    known = {f.name for f in fields}
    mapping: dict[str, str] = {}
    for name, column in (given or {}).items():
        if name not in known:
            raise ImportProblem(
                f"Unknown field {name!r} in the mapping; fields are {', '.join(sorted(known))}.",
                field=f"mapping.{name}",
            )
        if column not in header:
            raise ImportProblem(
                f"The mapping names column {column!r}, which the file does not have.",
                field=f"mapping.{name}",
            )
        mapping[name] = column
    used = set(mapping.values())
    for f in fields:
        if f.name in mapping:
            continue
        for candidate in (f.name, *f.aliases):
            column = by_key.get(key(candidate))
            if column is not None and column not in used:
                mapping[f.name] = column
                used.add(column)
                break
    missing = [f.name for f in fields if f.required and f.name not in mapping]
    if missing:
        raise ImportProblem(
            f"No column for the required field(s) {', '.join(missing)}; "
            "name them in the header or give a mapping.",
            field="mapping",
        )
    return mapping


# -- reading records from an offset ------------------------------------------------------------
class _Records:
    """CSV records from a binary file, each with the byte offset just after it.

    The csv module pulls lines only as it needs them (more than one for a quoted field
    with line breaks), so the offset after the last line pulled is where the next
    record starts."""

    def __init__(self, f: io.BufferedReader | Any, offset: int, delimiter: str) -> None:
        self.f = f
        self.offset = offset
        self.delimiter = delimiter

    def _lines(self) -> Iterator[str]:
        self.f.seek(self.offset)
        first = self.offset == 0
        while True:
            line = self.f.readline()
            if not line:
                return
            self.offset += len(line)
            yield _decode(line, first)
            first = False

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self._lines(), delimiter=self.delimiter, strict=False)
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            yield self.offset, record


# -- the job -----------------------------------------------------------------------------------
async def start(session: AsyncSession, import_: Any, queue: str) -> str:
    """Queue the import's first chunk in the caller's transaction."""
    return await enqueue(
        session,
        queue,
        {"import_id": import_.id, "offset": import_.byte_offset},
        org_id=import_.org_id,
        job_id=job_id_for(queue, import_.id, str(import_.byte_offset)),
    )


def _row(number: int, record: list[str], header: list[str], mapping: dict[str, str]) -> Row:
    by_column = {
        name: (record[i].strip() if i < len(record) else "") for i, name in enumerate(header)
    }
    values = {f: by_column[c] for f, c in mapping.items() if by_column.get(c, "") != ""}
    mapped = set(mapping.values())
    extra = {c: v for c, v in by_column.items() if c and c not in mapped and v != ""}
    return Row(number, values, extra, record)


@dataclass
class _Chunk:
    items: list[tuple[Row, Any]]
    errors: list[RowError]
    end: int  # byte offset after the chunk
    number: int  # record number of the next row
    done: bool


def _read_chunk(
    imp: Any, handler: RowHandler[Any], chunk_rows: int, chunk_seconds: float
) -> _Chunk:
    """Read and validate the rows of one chunk (blocking: runs in a thread)."""
    items: list[tuple[Row, Any]] = []
    errors: list[RowError] = []
    number = imp.row_number
    deadline = time.monotonic() + chunk_seconds
    width = len(imp.header)
    with Path(imp.path).open("rb") as f:
        records = _Records(f, imp.byte_offset, imp.delimiter)
        iterator = iter(records)
        end, exhausted = imp.byte_offset, False
        while len(items) + len(errors) < chunk_rows and time.monotonic() < deadline:
            try:
                end, record = next(iterator)
            except StopIteration:
                exhausted = True
                break
            except (UnicodeDecodeError, csv.Error) as exc:
                # the reader is unusable past a broken line: go on from the next line
                end = records.offset
                records = _Records(f, end, imp.delimiter)
                iterator = iter(records)
                reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
                errors.append(RowError(number, None, f"The row cannot be read: {reason}."))
                number += 1
                continue
            if not any(v.strip() for v in record):
                number += 1  # a blank line
                continue
            if len(record) > width:
                reason = f"The row has {len(record)} columns; the header has {width}."
                errors.append(RowError(number, None, reason, record))
                number += 1
                continue
            row = _row(number, record, imp.header, imp.mapping)
            try:
                items.append((row, handler.validate(row, imp)))
            except RowInvalid as exc:
                errors.append(RowError(number, exc.column, exc.reason, record))
            number += 1
    return _Chunk(items, errors, end, number, exhausted or end >= imp.total_bytes)


async def run_chunk(
    db: Database,
    job: Job,
    model: type[Any],
    error_model: type[Any],
    handler: RowHandler[Any],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    max_attempts: int | None = None,
) -> None:
    """Import the next chunk of rows and queue the one after (call it from a job handler
    with `transactional=False`).

    The rows are read and validated outside any transaction (in a thread); then one
    transaction checks that the import is still at this chunk's offset, writes the rows,
    the errors and the progress, and queues the next chunk. A job that runs twice, or
    one left over from before a crash, finds the offset moved and does nothing. An error
    is retried by the queue; on attempt `max_attempts` (the job handler's) the import is
    marked `failed` with the error instead, so it never stays `running` forever."""
    try:
        await _run_chunk(db, job, model, error_model, handler, chunk_rows, chunk_seconds)
    except Exception as exc:
        if max_attempts is None or job.attempt < max_attempts:
            raise
        async with db.transaction() as session:
            imp = await session.get(model, job.payload["import_id"])
            if imp is None or imp.status in FINAL:
                return
            imp.status, imp.finished_at = "failed", utcnow()
            imp.error = f"The rows after byte {imp.byte_offset} failed: {type(exc).__name__}."
            imp.updated_at = imp.finished_at
        await asyncio.to_thread(Path(imp.path).unlink, missing_ok=True)


async def _run_chunk(
    db: Database,
    job: Job,
    model: type[Any],
    error_model: type[Any],
    handler: RowHandler[Any],
    chunk_rows: int,
    chunk_seconds: float,
) -> None:
    import_id, offset = job.payload["import_id"], job.payload.get("offset")
    async with db.read() as session:
        imp = await session.get(model, import_id)
    if imp is None or imp.status in FINAL or imp.byte_offset != offset:
        return  # gone, finished, canceled, or an old job for a chunk already done
    try:
        chunk = await asyncio.to_thread(_read_chunk, imp, handler, chunk_rows, chunk_seconds)
    except FileNotFoundError:
        chunk = None
    async with db.transaction() as session:
        imp = await session.get(model, import_id, with_for_update=True)
        if imp is None or imp.status in FINAL or imp.byte_offset != offset:
            return
        now = utcnow()
        imp.updated_at = now
        imp.started_at = imp.started_at or now
        if chunk is None:
            imp.status, imp.error, imp.finished_at = "failed", "The uploaded file is gone.", now
            return
        imp.status = "running"
        if imp.dry_run:
            savepoint = await session.begin_nested()
            outcome = await handler.write(session, imp, chunk.items, True)
            await savepoint.rollback()
        else:
            outcome = await handler.write(session, imp, chunk.items, False)
        errors = chunk.errors + outcome.errors
        session.add_all(
            error_model(
                id=new_id(),
                org_id=imp.org_id,
                import_id=imp.id,
                row=e.row,
                column=e.column,
                reason=e.reason[:1000],
                values=e.values,
            )
            for e in errors
        )
        imp.rows_read += chunk.number - imp.row_number
        imp.rows_failed += len(errors)
        imp.created += outcome.created
        imp.updated += outcome.updated
        imp.unchanged += outcome.unchanged
        imp.byte_offset, imp.row_number = chunk.end, chunk.number
        imp.chunks += 1
        if chunk.done:
            imp.status, imp.finished_at = "completed", now
        else:
            await enqueue(
                session,
                job.queue,
                {"import_id": imp.id, "offset": chunk.end},
                org_id=imp.org_id,
                job_id=job_id_for(job.queue, imp.id, str(chunk.end)),
            )
    if chunk is not None and chunk.done:
        await asyncio.to_thread(Path(imp.path).unlink, missing_ok=True)


async def cancel(session: AsyncSession, import_: Any) -> bool:
    """Stop an import between chunks (rows already written stay); False when finished."""
    if import_.status in FINAL:
        return False
    import_.status, import_.finished_at = "canceled", utcnow()
    import_.updated_at = import_.finished_at
    return True


def remove_file(import_: Any) -> None:
    """Delete an import's uploaded file (after `cancel` commits)."""
    Path(import_.path).unlink(missing_ok=True)


# -- the error report --------------------------------------------------------------------------
async def error_report(
    db: Database, error_model: type[Any], import_: Any, *, page: int = 2000
) -> AsyncIterator[str]:
    """The refused rows as CSV text: `row,column,reason` then the file's own columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row", "column", "reason", *import_.header])
    last = (-1, "")
    while True:
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        async with db.read() as session:
            rows = (
                await session.execute(
                    select(
                        error_model.row,
                        error_model.id,
                        error_model.column,
                        error_model.reason,
                        error_model.values,
                    )
                    .where(
                        error_model.import_id == import_.id,
                        error_model.org_id == import_.org_id,
                        (error_model.row > last[0])
                        | ((error_model.row == last[0]) & (error_model.id > last[1])),
                    )
                    .order_by(error_model.row, error_model.id)
                    .limit(page)
                )
            ).all()
        if not rows:
            return
        for row in rows:
            writer.writerow([row.row, row.column or "", row.reason, *(row.values or [])])
        last = (rows[-1].row, rows[-1].id)


__all__ = [
    "FINAL",
    "STATUSES",
    "CsvImportErrorMixin",
    "CsvImportMixin",
    "ImportField",
    "ImportProblem",
    "ImportStatus",
    "Outcome",
    "Row",
    "RowError",
    "RowHandler",
    "RowInvalid",
    "Upload",
    "cancel",
    "error_report",
    "import_dir",
    "read_header",
    "remove_file",
    "resolve_mapping",
    "run_chunk",
    "save_upload",
    "start",
]
