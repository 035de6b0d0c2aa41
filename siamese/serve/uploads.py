"""Reading a request's images within limits, in memory only.

Images arrive as multipart files or as base64 strings in a JSON object (CompreFace offers both).
The body is read as it streams and refused (413) as soon as it passes the request or the file
limit, before it is buffered whole; a `Content-Length` over the limit is refused before any of
it is read. Nothing is written to disk: multipart parts are collected into bytes (Starlette's
form parser would spool files over 1 MiB to a temporary file).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from PIL import Image, UnidentifiedImageError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_PARTS = 64
MAX_FIELD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """The caps on one request: its body, each image (encoded), each image's decoded pixels."""

    request_bytes: int
    file_bytes: int
    pixels: int


def too_large(what: str, size: int, limit: int) -> HTTPException:
    return HTTPException(413, f"{what} is {_mib(size)}, more than the {_mib(limit)} limit")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


@dataclass
class Upload:
    """A request's fields (text) and files (bytes, with the client's file names)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[bytes]] = field(default_factory=dict)
    filenames: dict[str, list[str]] = field(default_factory=dict)

    def images(self, name: str, limits: Limits, required: bool = True) -> list[bytes]:
        """The images sent as `name`: files, or base64 strings in JSON (one, or a list).

        Raises:
            HTTPException: 422 when required and missing or not base64; 413 over the file limit.
        """
        found = self.files.get(name, [])
        if not found and name in self.fields:
            found = [_b64(name, value, limits) for value in _strings(self.fields[name])]
        if required and not found:
            raise HTTPException(422, f"no image {name!r} in the request")
        return found

    def names(self, name: str) -> list[str]:
        """What the images sent as `name` are called: the client's file names, else `name` (`name[i]`)."""
        given = self.filenames.get(name, [])
        if given and all(given):
            return given
        count = len(self.files.get(name, [])) or len(_strings(self.fields.get(name)))
        return [name] if count == 1 else [f"{name}[{i}]" for i in range(count)]

    def text(self, name: str) -> str | None:
        """A text field, or None."""
        value = self.fields.get(name)
        if value is not None and not isinstance(value, str):
            raise HTTPException(422, f"{name!r} must be a string")
        return value

    def number(self, name: str, kind: type, low: float, high: float) -> Any:
        """A numeric field within [low, high], or None.

        Raises:
            HTTPException: 422 naming the field when it is not such a number.
        """
        value = self.fields.get(name)
        if value is None or value == "":
            return None
        try:
            number = kind(value)
            if isinstance(value, bool) or not low <= number <= high:
                raise ValueError
        except (TypeError, ValueError):
            raise HTTPException(
                422, f"{name!r} must be a {kind.__name__} in [{low:g}, {high:g}], got {value!r}"
            ) from None
        return number


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value not in (None, "") else []


def _b64(name: str, value: Any, limits: Limits) -> bytes:
    if not isinstance(value, str):
        raise HTTPException(422, f"{name!r} must be a base64 string (or a list of them)")
    text = value.split(",", 1)[1] if value.startswith("data:") else value  # data URLs from browsers
    if len(text) * 3 // 4 > limits.file_bytes:
        raise too_large(f"image {name!r}", len(text) * 3 // 4, limits.file_bytes)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"{name!r} is not valid base64") from None


async def read_upload(headers: Any, stream: AsyncIterator[bytes], limits: Limits) -> Upload:
    """Read a multipart or JSON body within `limits`.

    Args:
        headers: the request's headers (a case-insensitive mapping).
        stream: the body as it arrives (`Request.stream()`).
        limits: the caps.

    Raises:
        HTTPException: 413 over a limit, 415 another content type, 422 a malformed body.
    """
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.request_bytes:
        raise too_large("the request", int(length), limits.request_bytes)
    ctype, options = parse_options_header(headers.get("content-type", ""))
    if ctype == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise HTTPException(422, "multipart/form-data without a boundary")
        return await _multipart(boundary, stream, limits)
    if ctype == b"application/json":
        return _json(await _body(stream, limits))
    raise HTTPException(415, "send images as multipart/form-data files or base64 in application/json")


async def _body(stream: AsyncIterator[bytes], limits: Limits) -> bytes:
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limits.request_bytes:
            raise too_large("the request", size, limits.request_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Upload:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(422, "the JSON body must be an object")
    return Upload(fields={str(k): v for k, v in data.items()})


class _Parts:
    """python-multipart callbacks collecting each part in memory, within the limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.upload = Upload()
        self.count = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._data: list[bytes] = []
        self._size = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.begin,
            "on_part_data": self.data,
            "on_part_end": self.end,
            "on_header_field": lambda d, s, e: setattr(self, "_header_field", self._header_field + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_header_value", self._header_value + d[s:e]),
            "on_header_end": self.header_end,
        }

    def begin(self) -> None:
        self.count += 1
        if self.count > MAX_PARTS:
            raise HTTPException(413, f"more than {MAX_PARTS} parts in one request")
        self._headers, self._data, self._size = {}, [], 0

    def header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        is_file = b"filename" in parse_options_header(self._headers.get(b"content-disposition", b""))[1]
        limit = self.limits.file_bytes if is_file else MAX_FIELD_BYTES
        if self._size > limit:
            name = self._name() or "a part"
            raise too_large(f"{'image' if is_file else 'field'} {name!r}", self._size, limit)
        self._data.append(data[start:end])

    def end(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name, body = self._name(), b"".join(self._data)
        if name is None:
            raise HTTPException(422, "a multipart part without a name")
        if b"filename" in options:
            self.upload.files.setdefault(name, []).append(body)
            self.upload.filenames.setdefault(name, []).append(options[b"filename"].decode("utf-8", "replace"))
        else:
            try:
                self.upload.fields[name] = body.decode()
            except UnicodeDecodeError:
                raise HTTPException(422, f"field {name!r} is not UTF-8 text") from None

    def _name(self) -> str | None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        raw = options.get(b"name")
        return None if raw is None else raw.decode("utf-8", "replace")


async def _multipart(boundary: bytes, stream: AsyncIterator[bytes], limits: Limits) -> Upload:
    parts = _Parts(limits)
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > limits.request_bytes:
                raise too_large("the request", size, limits.request_bytes)
            parser.write(chunk)
        parser.finalize()
    except HTTPException:
        raise
    except Exception as exc:  # python-multipart's MultipartParseError and friends
        raise HTTPException(422, f"malformed multipart body: {exc}") from None
    return parts.upload


def image_header(data: bytes, name: str, limits: Limits) -> tuple[int, int]:
    """Check an image's header before decoding it: it is an image, and not too many pixels.

    Returns:
        Its (width, height).

    Raises:
        HTTPException: 415 not an image, 413 over the pixel limit.
    """
    if not data:
        raise HTTPException(422, f"image {name!r} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                width, height = img.size
    except Image.DecompressionBombError:
        raise HTTPException(413, f"image {name!r} has too many pixels (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise HTTPException(
            415, f"{name!r} is not an image siamese can read (PNG, JPEG, BMP, TIFF, ...)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise HTTPException(422, f"cannot read image {name!r}: {exc}") from None
    if width * height > limits.pixels:
        raise HTTPException(
            413,
            f"image {name!r} is {width}x{height} = {width * height / 1e6:.1f} megapixels, "
            f"more than the {limits.pixels / 1e6:g} megapixel limit",
        )
    return width, height
