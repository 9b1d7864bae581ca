"""The HTTP service: an ASGI app (FastAPI) over the SDK, with keys, limits, jobs and a review page.

    uvicorn's ``condanon serve`` runs `create_app(ServeConfig(...))`; tests call it through an ASGI test client.

Every error is answered as one line of JSON, ``{"error": "..."}``, with a 4xx status for a bad request (401 no key,
403 a path outside the root, 404, 408 a slow upload, 410 expired results, 413 too large, 415 not an image, 422 an
image that does not decode) and 503 with Retry-After when the queue is full. Uploaded images are held in memory and
answered; nothing of them is written or logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import io
import json
import logging
import os
import shutil
import threading
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import CondanonError, ImageError, ModelError, show_path
from ..imageio import Frames
from .auth import Caller, KeyRing
from .config import ServeConfig
from .engine import Engine, RequestOptions, anonymizer_for, flag
from .errors import ApiError
from .jobstore import JobRecord, JobRunner, JobStore
from .page import review_page
from .uploads import SUFFIX_OF_TYPE, check_type, read_form, safe_name

log = logging.getLogger(__name__)

_MEDIA_OF_SUFFIX = {suffix: media for media, suffix in SUFFIX_OF_TYPE.items()}
JOB_UPLOADS = 2
"""Job uploads read at once (each may be up to the job upload limit); the next gets 503."""
_PUBLIC = {"/", "/healthz", "/readyz", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"}
_FILE_FIELD = {"file": {"type": "string", "format": "binary", "description": "the image"}}
_OPTION_FIELDS = {
    "method": {"type": "string", "description": "auto (default), synthetic, dp2, blur, pixelate or mask"},
    "seed": {"type": "integer", "description": "makes every random choice reproducible"},
    "attributes": {"type": "boolean", "description": "blur, pixelate and mask read age, sex and emotion too"},
}


def _multipart(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def create_app(config: ServeConfig) -> FastAPI:
    """Return the service's ASGI app; models load in the background at start (``/readyz`` says when)."""
    keys = KeyRing(config.api_keys, config.reviewer_keys, open_access=config.no_auth)
    default = RequestOptions(config.method, config.seed)
    engine = Engine(config.workers, config.queue, config.request_timeout, default, processes=not config.threads)
    store = JobStore(config)
    runner = JobRunner(store)
    root = Path(config.root).resolve() if config.root is not None else None
    uploads = threading.BoundedSemaphore(JOB_UPLOADS)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if config.warm_up:
            threading.Thread(target=engine.warm_up, name="condanon-warm-up", daemon=True).start()
        else:
            engine.ready.set()
        if config.run_jobs:
            runner.start()
        try:
            yield
        finally:
            runner.stop()
            engine.close()
            store.close()

    app = FastAPI(
        title="condanon",
        version=__version__,
        summary="Anonymise faces keeping age, sex and emotion; analyse faces; run jobs on videos and folders.",
        lifespan=lifespan,
    )
    app.state.engine, app.state.store, app.state.runner, app.state.config = engine, store, runner, config

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"error": error.message}, error.status, headers=error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "request refused"
        return JSONResponse({"error": " ".join(message.split())}, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, 400)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> JSONResponse:
        log.error("internal error: %s", type(error).__name__, exc_info=error)
        return JSONResponse({"error": "internal error (the server's log says more)"}, 500)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if request.url.path not in _PUBLIC:
            caller = keys.caller(request.headers.get("authorization"))
            if caller is None:
                return JSONResponse(
                    {"error": "missing or unknown API key (Authorization: Bearer <key>)"},
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            request.state.caller = caller
        return await call_next(request)

    # -- status --------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(review_page(), headers={"Cache-Control": "no-store"})

    @app.get("/healthz", summary="The process answers (no key needed)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The models are loaded (no key needed)")
    async def readyz() -> JSONResponse:
        if not engine.ready.is_set():
            return JSONResponse({"error": "loading the models"}, 503, headers={"Retry-After": "5"})
        if engine.warm_error is not None:
            return JSONResponse({"error": f"the models did not load: {engine.warm_error}"}, 503)
        return JSONResponse({"status": "ready", "workers": engine.workers, "method": config.method})

    # -- images --------------------------------------------------------------------------------

    @app.post(
        "/v1/anonymize",
        summary="Anonymise the faces of one image",
        description="Answers the image in its own format (metadata removed), or with `report=true` a JSON object "
        "with the per-face report and the image as base64. Headers X-Condanon-Faces and X-Condanon-Fallbacks "
        "count the faces and those that fell back to the mask.",
        openapi_extra=_multipart(
            _FILE_FIELD
            | _OPTION_FIELDS
            | {"report": {"type": "boolean", "description": "answer JSON with the report"}},
            ["file"],
        ),
        responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "application/json": {}}}},
    )
    async def anonymize(request: Request) -> Response:
        async with engine.admit() as place:
            form = await read_form(request, config.max_upload_bytes, config.request_timeout)
            data, name, values = _one_image(form, request)
            options = RequestOptions.parse(values, config.method, config.seed)
            want_report = flag(values.get("report"), "report")
            encoded, media, report = await engine.run(place, _anonymize_image, options, data, name, config.max_pixels)
        faces = report.get("faces", [])
        fallbacks = sum(1 for face in faces if face.get("verdict") == "fallback")
        log.info("anonymize: %d faces, %d fallbacks", len(faces), fallbacks)
        headers = {"X-Condanon-Faces": str(len(faces)), "X-Condanon-Fallbacks": str(fallbacks)}
        if want_report:
            image = {"media_type": media, "base64": base64.b64encode(encoded).decode()}
            return JSONResponse({"report": report, "image": image}, headers=headers)
        return Response(encoded, media_type=media, headers=headers | {"Cache-Control": "no-store"})

    @app.post(
        "/v1/analyze",
        summary="Faces of one image with age, sex and emotion (no pixels kept)",
        openapi_extra=_multipart(_FILE_FIELD, ["file"]),
    )
    async def analyze(request: Request) -> JSONResponse:
        async with engine.admit() as place:
            form = await read_form(request, config.max_upload_bytes, config.request_timeout)
            data, name, _ = _one_image(form, request)
            answer = await engine.run(place, _analyze_image, data, name, config.max_pixels, config.seed)
        return JSONResponse(answer)

    # -- jobs ----------------------------------------------------------------------------------

    @app.post(
        "/v1/jobs",
        status_code=202,
        summary="Start a job on uploaded videos or images, or on a path inside the server's root",
        description="multipart: one or more `file` fields (images or videos), or a `path` field (a file or folder "
        "inside the server's --root); options `method`, `seed`, `attributes`, `analytics` (passenger analytics of "
        'videos), `line`, `line_names`. A JSON body {"path": ..., options} works too. Answers 202 with the job.',
        openapi_extra=_multipart(
            {
                "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "path": {"type": "string"},
                "analytics": {"type": "boolean"},
                "line": {"type": "string", "description": "x1,y1,x2,y2 (fractions or pixels)"},
                "line_names": {"type": "string", "description": "in,out"},
            }
            | _OPTION_FIELDS,
            [],
        ),
    )
    async def create_job(request: Request) -> JSONResponse:
        caller: Caller = request.state.caller
        if store.active() >= config.max_jobs:
            raise ApiError(503, "too many jobs waiting; try again later", {"Retry-After": "30"})
        if not uploads.acquire(blocking=False):
            raise ApiError(503, "too many job uploads at once; try again later", {"Retry-After": "10"})
        try:
            return await _create_job(request, caller)
        finally:
            uploads.release()

    async def _create_job(request: Request, caller: Caller) -> JSONResponse:
        job_id = store.new_id()
        spool = store.spooled(job_id)
        try:
            if request.headers.get("content-type", "").startswith("application/json"):
                values, inputs, source = await _json_job(request), [], "path"
            else:
                spool.mkdir(mode=0o700, parents=True)
                form = await read_form(
                    request, config.max_job_upload_bytes, config.request_timeout, spool, config.max_files
                )
                values = form.values()
                inputs = _spooled_inputs(form)
                source = "upload" if inputs else "path"
            if source == "path":
                inputs = _path_inputs(values.get("path", ""), root, config.max_files)
            elif values.get("path"):
                raise ApiError(400, "give files or a path, not both")
            options = _job_options(values, config)
            await asyncio.to_thread(_check_videos, inputs, config.max_video_seconds)
        except BaseException:
            shutil.rmtree(spool, ignore_errors=True)
            raise
        if source == "path":
            shutil.rmtree(spool, ignore_errors=True)
        record = store.create(job_id, caller.owner, source, inputs, options)
        log.info("job %s: queued, %d input(s)", job_id, len(inputs))
        return JSONResponse(record.to_dict(root), 202, headers={"Location": f"/v1/jobs/{job_id}"})

    @app.get("/v1/jobs", summary="The caller's jobs (a reviewer sees every job)")
    async def list_jobs(request: Request) -> dict[str, Any]:
        caller: Caller = request.state.caller
        return {"jobs": [r.to_dict(root) for r in store.all(None if caller.reviewer else caller.owner)]}

    @app.get("/v1/jobs/{job_id}", summary="A job, with its progress")
    async def get_job(job_id: str, request: Request) -> dict[str, Any]:
        return _job(store, job_id, request.state.caller).to_dict(root)

    @app.delete("/v1/jobs/{job_id}", status_code=204, summary="Stop a job and delete its inputs and results")
    async def delete_job(job_id: str, request: Request) -> Response:
        _job(store, job_id, request.state.caller)
        store.delete(job_id)
        runner.cancel(job_id)
        return Response(status_code=204)

    @app.get("/v1/jobs/{job_id}/result", summary="The job's outputs and report as one zip file")
    async def job_result(job_id: str, request: Request) -> Response:
        record = _ended(store, job_id, request.state.caller)
        archive = await asyncio.to_thread(_zip, store.results(record.id))
        return FileResponse(archive, media_type="application/zip", filename=f"condanon-{record.id}.zip")

    @app.get("/v1/jobs/{job_id}/files", summary="The files of the job's result")
    async def job_files(job_id: str, request: Request) -> dict[str, Any]:
        record = _ended(store, job_id, request.state.caller, finished=False)
        results = store.results(record.id)
        return {"files": _result_files(results)}

    @app.get("/v1/jobs/{job_id}/files/{name:path}", summary="One file of the job's result")
    async def job_file(job_id: str, name: str, request: Request) -> FileResponse:
        record = _ended(store, job_id, request.state.caller, finished=False)
        path = _inside(store.results(record.id), name)
        if path is None or name not in _result_files(store.results(record.id)):
            raise ApiError(404, f"no file {name[:200]!r} in the job's result")
        return FileResponse(path, media_type=_media_of(path), headers={"Cache-Control": "no-store"})

    @app.get("/v1/jobs/{job_id}/originals/{name:path}", summary="An input of a path job (reviewer keys only)")
    async def job_original(job_id: str, name: str, request: Request) -> FileResponse:
        caller: Caller = request.state.caller
        record = _job(store, job_id, caller)
        if not caller.reviewer or record.source != "path" or root is None:
            raise ApiError(403, "originals are shown to reviewer keys, for server-side path jobs only")
        path = _inside(root, name)
        if path is None or not path.is_file() or not any(_covers(Path(i), path) for i in record.inputs):
            raise ApiError(404, f"no input {name[:200]!r} in this job")
        return FileResponse(path, media_type=_media_of(path), headers={"Cache-Control": "no-store"})

    @app.get("/v1/jobs/{job_id}/analytics", summary="The passenger analytics of a job's videos, as JSON or CSV")
    async def job_analytics(job_id: str, request: Request, format: str = "json", table: str = "people") -> Response:
        record = _ended(store, job_id, request.state.caller)
        folder = store.results(record.id) / "analytics"
        if not folder.is_dir():
            raise ApiError(404, "this job has no analytics (start it with analytics=true, on videos)")
        if format == "json":
            return JSONResponse({"videos": _analytics_json(folder)})
        if format != "csv" or table not in ("people", "timeline"):
            raise ApiError(400, "format is json or csv; table is people or timeline")
        return Response(_analytics_csv(folder, table), media_type="text/csv")

    if config.cors_origins:  # added last, so it wraps the key check: a browser's preflight carries no key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


# -- images ---------------------------------------------------------------------------------------


def _one_image(form: Any, request: Request) -> tuple[bytes, str, dict[str, str]]:
    """Return the image of a request (its bytes, a name, its options from the form and the query)."""
    files = form.files("file")
    if not files:
        raise ApiError(400, "no 'file' field with an image in the form")
    if len(files) > 1:
        raise ApiError(400, "one image per request (send folders and videos as a job)")
    part = files[0]
    name = safe_name(part.filename or "upload")
    check_type(part.content_type, bytes(part.data[:64]), name)
    values = dict(request.query_params) | form.values()
    return bytes(part.data), name, values


def _decode(data: bytes, name: str, max_pixels: int) -> Frames:
    from ..imageio import PixelLimitError, read_frames

    try:
        return read_frames(data, name=name, max_pixels=max_pixels)
    except PixelLimitError as error:
        raise ApiError(413, str(error)) from None
    except ImageError as error:
        raise ApiError(422, str(error)) from None


def _anonymize_image(
    options: RequestOptions, data: bytes, name: str, max_pixels: int
) -> tuple[bytes, str, dict[str, Any]]:
    """Anonymise an uploaded image in memory; return its encoding in the input's format, the media type, the report."""
    from ..imageio import encode_frames, suffix_of_format
    from ..workers import anonymize_frames

    frames = _decode(data, name, max_pixels)
    try:
        out, report = anonymize_frames(anonymizer_for(options), frames, name)
    except ModelError as error:
        raise ApiError(500, str(error)) from None
    except CondanonError as error:
        raise ApiError(422, str(error)) from None
    suffix = suffix_of_format(frames.format)
    return encode_frames(out, suffix), _MEDIA_OF_SUFFIX[suffix], report


def _analyze_image(data: bytes, name: str, max_pixels: int, seed: int) -> dict[str, Any]:
    frames = _decode(data, name, max_pixels)
    analyzer = anonymizer_for(RequestOptions("blur", seed, attributes=True))
    images = []
    for image in frames.images:
        try:
            faces = analyzer.analyze(image)
        except CondanonError as error:
            raise ApiError(422, str(error)) from None
        images.append({"width": image.shape[1], "height": image.shape[0], "faces": [face.to_dict() for face in faces]})
    answer: dict[str, Any] = {"source": name} | images[0]
    if len(images) > 1:
        answer["frames"] = images
    return answer


# -- jobs -----------------------------------------------------------------------------------------


def _job(store: JobStore, job_id: str, caller: Caller) -> JobRecord:
    record = store.get(job_id)
    if record is None or (record.owner != caller.owner and not caller.reviewer):
        raise ApiError(404, f"no job {job_id[:40]!r}")
    return record


def _ended(store: JobStore, job_id: str, caller: Caller, finished: bool = True) -> JobRecord:
    """Return a job whose results may be read: 409 while it runs (unless ``finished`` is false), 410 once expired."""
    record = _job(store, job_id, caller)
    if record.status == "expired":
        raise ApiError(410, "the job's results have expired and were deleted")
    if finished and record.status in ("queued", "running"):
        raise ApiError(409, f"the job is {record.status}; its result comes when it is done")
    return record


async def _json_job(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > 65536:
        raise ApiError(413, "a JSON job request is over 64 KiB")
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return {str(k): ("true" if v is True else "false" if v is False else str(v)) for k, v in data.items()}


def _spooled_inputs(form: Any) -> list[str]:
    """Check each uploaded file's content; give it the suffix of what it is; return their paths."""
    from ..imageio import IMAGE_SUFFIXES
    from ..video.io import VIDEO_SUFFIXES

    inputs = []
    for part in form.files("file"):
        assert part.path is not None
        media = check_type(part.content_type, bytes(part.data[:64]), safe_name(part.filename), ("image", "video"))
        path = part.path
        if path.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            renamed = path.with_name(path.name + SUFFIX_OF_TYPE[media])
            path.rename(renamed)
            path = renamed
        inputs.append(str(path))
    return inputs


def _path_inputs(text: str, root: Path | None, max_files: int) -> list[str]:
    """Return a server-side path job's input, checked to lie inside the root (every file under it too)."""
    from ..video.io import list_media

    if root is None:
        raise ApiError(403, "server-side paths are off (the server has no --root)")
    if not text.strip():
        raise ApiError(400, "give one or more 'file' fields, or a 'path' inside the server's root")
    path = _inside(root, text.strip())
    if path is None:
        raise ApiError(403, f"{show_path(text[:200])}: outside the server's root")
    if not path.exists():
        raise ApiError(404, f"{show_path(text[:200])}: no such file or folder under the server's root")
    media = list_media([str(path)])
    if len(media) > max_files:
        raise ApiError(413, f"{len(media)} files, over the limit of {max_files} per job")
    for file, _ in media:
        if _inside(root, str(file)) is None:
            raise ApiError(403, f"{show_path(file)}: a link that leads outside the server's root")
    if not media:
        raise ApiError(400, f"{show_path(text[:200])}: no image or video there")
    return [str(path)]


def _inside(root: Path, name: str) -> Path | None:
    """Return ``root/name`` with every link resolved, or None when that lies outside ``root``."""
    candidate = Path(name)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    return resolved if resolved == root or resolved.is_relative_to(root.resolve()) else None


def _covers(item: Path, path: Path) -> bool:
    return path == item or path.is_relative_to(item)


def _job_options(values: dict[str, str], config: ServeConfig) -> dict[str, Any]:
    options = RequestOptions.parse(values, config.method, config.seed)
    analytics = flag(values.get("analytics"), "analytics")
    line, names = values.get("line", "").strip(), values.get("line_names", "").strip()
    if (line or names) and not analytics:
        raise ApiError(400, "line and line_names need analytics=true")
    if names and not line:
        raise ApiError(400, "line_names needs a line")
    if line:
        from ..analytics.geometry import CountingLine

        try:
            CountingLine.parse(line, names or None)
        except CondanonError as error:
            raise ApiError(400, str(error)) from None
    chosen = {"method": options.method, "seed": options.seed, "attributes": options.attributes, "analytics": analytics}
    return chosen | ({"line": line} if line else {}) | ({"line_names": names} if names else {})


def _check_videos(inputs: list[str], max_seconds: float) -> None:
    """Refuse (413) a job with a video longer than the limit, and (415) one that does not open."""
    from ..video.io import is_video, list_media

    for path, _ in list_media(inputs):
        if not is_video(path):
            continue
        import av

        try:
            with av.open(str(path)) as container:
                duration = container.duration / 1e6 if container.duration else None
                if duration is None and container.streams.video:
                    stream = container.streams.video[0]
                    if stream.duration and stream.time_base:
                        duration = float(stream.duration * stream.time_base)
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise ApiError(415, f"{path.name}: not a video that opens ({type(error).__name__})") from None
        if duration is not None and duration > max_seconds:
            raise ApiError(413, f"{path.name}: {duration:.0f} s, over the {max_seconds:g} s limit")


def _result_files(results: Path) -> list[str]:
    """Return the result files a client may fetch (outputs, report, analytics), never the job's own state files."""
    found = []
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts) and path.suffix != ".zip":
            found.append(relative.as_posix())
    return found


def _zip(results: Path) -> Path:
    """Return the zip of a job's result, written once beside it (a hidden file, written whole then renamed)."""
    archive = results / ".result.zip"
    if archive.is_file():
        return archive
    partial = results / f".result.{os.getpid()}.{threading.get_ident()}.partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as handle:
        for name in _result_files(results):
            handle.write(results / name, name)
    os.replace(partial, archive)
    return archive


def _media_of(path: Path) -> str:
    suffix = path.suffix.lower()
    media = {".jpeg": "image/jpeg", ".tiff": "image/tiff", ".json": "application/json", ".csv": "text/csv"}
    media |= {".html": "text/plain", ".svg": "text/plain"}  # never rendered as a page of ours
    return media.get(suffix) or _MEDIA_OF_SUFFIX.get(suffix) or "application/octet-stream"


def _analytics_json(folder: Path) -> list[dict[str, Any]]:
    videos = []
    for counts in sorted(folder.rglob("counts.json")):
        name = counts.parent.relative_to(folder).as_posix()
        entry: dict[str, Any] = {"video": "" if name == "." else name, "counts": json.loads(counts.read_text())}
        plots = sorted(p.relative_to(folder.parent).as_posix() for p in counts.parent.glob("*.png"))
        entry["plots"] = plots
        videos.append(entry)
    return videos


def _analytics_csv(folder: Path, table: str) -> str:
    out = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for path in sorted(folder.rglob(f"{table}.csv")):
        name = path.parent.relative_to(folder).as_posix()
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if writer is None:
                    writer = csv.DictWriter(out, ["video", *row], lineterminator="\n")
                    writer.writeheader()
                writer.writerow({"video": "" if name == "." else name} | row)
    return out.getvalue()


def spool_is_memory(config: ServeConfig) -> bool:
    """Whether uploaded job inputs wait in memory (``/dev/shm``) rather than on a disk."""
    return str(Path(config.spool).resolve()).startswith("/dev/shm" + os.sep)
