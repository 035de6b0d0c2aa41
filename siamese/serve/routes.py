"""The `/v1` endpoints: verify, identify, embed, enrol, delete, list identities, describe the model.

Each reads its images with `uploads.read_upload` (multipart files or base64 JSON, within the
limits), checks their headers, and hands them to the `Service`; searches run in a worker thread.
"""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request

from siamese.galleries.claims import check_claim, decide_claim
from siamese.serve.security import require
from siamese.serve.service import Embedded, Service
from siamese.serve.uploads import Limits, Upload, image_header, read_upload

router = APIRouter(prefix="/v1")

MAX_K = 100
MAX_IDENTITY = 128


def _binary(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "binary", "description": description}


def _body(
    images: dict[str, str], fields: dict[str, dict[str, Any]], required: list[str], many: str = ""
) -> dict:
    """The OpenAPI request body: the images as multipart files or base64 strings in JSON."""
    multipart: dict[str, Any] = {name: _binary(text) for name, text in images.items()}
    as_json: dict[str, Any] = {
        name: {"type": "string", "format": "byte", "description": f"{text} (base64)"}
        for name, text in images.items()
    }
    if many:
        multipart[many] = {"type": "array", "items": multipart[many]}
        as_json[many] = {"type": "array", "items": as_json[many]}
    schema = {"required": required, "additionalProperties": True}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {**multipart, **fields}, **schema}
                },
                "application/json": {
                    "schema": {"type": "object", "properties": {**as_json, **fields}, **schema}
                },
            },
        }
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in [
        (401, "no key, or an unknown one"),
        (403, "the key lacks the scope"),
        (404, "unknown identity"),
        (409, "no gallery, or the gallery cannot answer this"),
        (413, "a body, image or pixel count over the limits"),
        (415, "not multipart or JSON, or a file that is not an image"),
        (422, "a missing or malformed field, an unreadable image"),
        (503, "busy: over the concurrency limit (Retry-After)"),
    ]
}

_THRESHOLD = {"type": "number", "description": "a distance threshold overriding the calibrated one"}
_FUSION = {
    "type": "string",
    "description": "fusion rule over the identity's references (default: the gallery's)",
}


def _service(request: Request) -> Service:
    return request.app.state.service


def _limits(service: Service) -> Limits:
    c = service.config
    return Limits(c.max_request_bytes, c.max_file_bytes, c.max_pixels)


async def _upload(request: Request) -> tuple[Service, Upload, Limits, float]:
    start = time.perf_counter()
    service = _service(request)
    limits = _limits(service)
    return service, await read_upload(request.headers, request.stream(), limits), limits, start


async def _embed(service: Service, images: list[bytes], names: list[str], limits: Limits) -> Embedded:
    for data, name in zip(images, names, strict=True):
        image_header(data, name, limits)
    return await service.embed(images, names)


def _extras(service: Service, embedded: Embedded, start: float) -> dict[str, Any]:
    out: dict[str, Any] = {"fingerprint": service.fingerprint, "timings": embedded.timings(start)}
    if service.detector is not None:
        out["faces"] = [
            None if box is None else dict(zip("xywh", box, strict=True)) for box in embedded.boxes
        ]
    return out


@router.post(
    "/verify",
    summary="Are two images the same identity? Or is one image the enrolled identity it claims?",
    dependencies=[require("verify")],
    responses=_ERRORS,
    openapi_extra=_body(
        {"image_a": "first image (or the query of a claim)", "image_b": "second image"},
        {
            "claim": {"type": "string", "description": "an enrolled identity: verify image_a against it"},
            "threshold": _THRESHOLD,
            "fusion": _FUSION,
        },
        ["image_a"],
    ),
)
async def verify(request: Request) -> dict[str, Any]:
    """The decision `siamese verify A B --json` gives (or `verify A --gallery G --claim ID --json`)."""
    service, upload, limits, start = await _upload(request)
    threshold = upload.number("threshold", float, -1e9, 1e9)
    claim = upload.text("claim")
    if claim:
        return await _verify_claim(service, upload, limits, claim, threshold, start)
    images = upload.images("image_a", limits) + upload.images("image_b", limits)
    if len(images) != 2:
        raise HTTPException(422, "send two images, image_a and image_b (or image_a and a claim)")
    embedded = await _embed(service, images, ["image_a", "image_b"], limits)
    result = service.model.decide(embedded.embeddings, threshold, start)
    return {**result.to_dict(), **_extras(service, embedded, start)}


async def _verify_claim(
    service: Service, upload: Upload, limits: Limits, claim: str, threshold: float | None, start: float
) -> dict[str, Any]:
    gallery = service.require_gallery()
    if claim not in gallery.identities:
        raise HTTPException(404, f"{claim!r} is not enrolled")
    fusion = upload.text("fusion") or None
    check_claim(gallery, claim, fusion)
    images = upload.images("image_a", limits)
    if len(images) != 1 or upload.images("image_b", limits, required=False):
        raise HTTPException(422, "a claim is verified on ONE image, image_a")
    embedded = await _embed(service, images, ["image_a"], limits)
    source = str(service.config.gallery)
    result = decide_claim(
        gallery, embedded.embeddings, claim, fusion, threshold, service.model.source, source, start
    )
    return {**result.to_dict(), **_extras(service, embedded, start)}


@router.post(
    "/identify",
    summary="Who is this, if anyone? Top-k enrolled identities and the open-set decision",
    dependencies=[require("verify")],
    responses=_ERRORS,
    openapi_extra=_body(
        {"image": "the query image"},
        {
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "candidates returned"},
            "fpir": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "operating point"},
            "fusion": _FUSION,
        },
        ["image"],
    ),
)
async def identify(request: Request) -> dict[str, Any]:
    """The same answer as `siamese identify IMAGE --gallery G --json` gives for one query."""
    service, upload, limits, start = await _upload(request)
    k = upload.number("k", int, 1, MAX_K) or service.config.default_k
    fpir = upload.number("fpir", float, 1e-12, 1.0)
    images = upload.images("image", limits)
    if len(images) != 1:
        raise HTTPException(422, "identify takes one image, 'image'")
    (name,) = upload.names("image")
    image_header(images[0], name, limits)
    result, embedded = await service.identify(images[0], name, k, fpir, upload.text("fusion") or None)
    result.seconds = time.perf_counter() - start
    return {**result.to_dict(), **_extras(service, embedded, start)}


@router.post(
    "/embed",
    summary="Images to embeddings",
    dependencies=[require("verify")],
    responses=_ERRORS,
    openapi_extra=_body({"images": "one or more images"}, {}, ["images"], many="images"),
)
async def embed(request: Request) -> dict[str, Any]:
    """The rows `siamese embed` writes for the same images."""
    service, upload, limits, start = await _upload(request)
    images = upload.images("images", limits)
    names = upload.names("images")
    embedded = await _embed(service, images, names, limits)
    return {
        "names": names,
        "embeddings": embedded.embeddings.tolist(),
        "dim": int(embedded.embeddings.shape[1]),
        "model": service.model.source,
        **_extras(service, embedded, start),
    }


@router.post(
    "/enroll",
    summary="Enrol an identity (or give a known one more references); persisted before the answer",
    dependencies=[require("enroll")],
    responses=_ERRORS,
    openapi_extra=_body(
        {"images": "one or more reference images"},
        {
            "identity": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_IDENTITY,
                "description": "who they show",
            }
        },
        ["identity", "images"],
        many="images",
    ),
)
async def enroll(request: Request) -> dict[str, Any]:
    """Visible to the next identify at once; the gallery on disk is replaced in one rename."""
    service, upload, limits, start = await _upload(request)
    identity = _identity(upload.text("identity"))
    images = upload.images("images", limits)
    embedded = await _embed(service, images, upload.names("images"), limits)
    known = service.gallery is not None and identity in service.gallery.identities
    gallery = await anyio.to_thread.run_sync(service.enroll, identity, embedded.embeddings)
    return {
        "identity": identity,
        "created": not known,
        "added": len(images),
        "references": len(gallery.references[gallery.position(identity)]),
        "gallery_size": gallery.size,
        **_extras(service, embedded, start),
    }


def _identity(name: str | None) -> str:
    if not name or not name.strip():
        raise HTTPException(422, "'identity' is required: the name to enrol the images under")
    if len(name) > MAX_IDENTITY or name != name.strip() or not name.isprintable():
        raise HTTPException(
            422,
            f"'identity' must be printable, without surrounding spaces, at most {MAX_IDENTITY} characters",
        )
    return name


@router.delete(
    "/identities/{identity:path}",
    summary="Remove an enrolled identity (never returned again)",
    dependencies=[require("enroll")],
    responses=_ERRORS,
)
async def delete_identity(identity: str, request: Request) -> dict[str, Any]:
    service = _service(request)
    try:
        gallery = await anyio.to_thread.run_sync(service.remove, identity)
    except KeyError:
        raise HTTPException(404, f"{identity!r} is not enrolled") from None
    return {"removed": identity, "gallery_size": 0 if gallery is None else gallery.size}


@router.get(
    "/identities", summary="The enrolled identities", dependencies=[require("verify")], responses=_ERRORS
)
def identities(request: Request) -> dict[str, Any]:
    gallery = _service(request).gallery
    if gallery is None:
        return {"identities": [], "gallery_size": 0}
    rows = [
        {"identity": n, "references": len(r)}
        for n, r in zip(gallery.identities, gallery.references, strict=True)
    ]
    return {"identities": rows, "gallery_size": gallery.size}


@router.get(
    "/info",
    summary="The model and gallery served, and the limits",
    dependencies=[require("verify")],
    responses=_ERRORS,
)
def info(request: Request) -> dict[str, Any]:
    service = _service(request)
    model, cfg, gallery = service.model, service.config, service.gallery
    return {
        "model": model.source,
        "fingerprint": service.fingerprint,
        "distance": model.distance,
        "threshold": model.threshold,
        "embedding_dim": model.embedding_dim,
        "detect": cfg.detect,
        "gallery": None
        if cfg.gallery is None
        else {
            "size": 0 if gallery is None else gallery.size,
            "fusions": [] if gallery is None else list(gallery.fusions),
            "fpir": None if gallery is None else gallery.fpir(),
        },
        "limits": {
            "file_bytes": cfg.max_file_bytes,
            "request_bytes": cfg.max_request_bytes,
            "pixels": cfg.max_pixels,
        },
    }
