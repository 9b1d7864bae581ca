"""``condanon serve``: the HTTP service and its review page (`condanon.serve`), from the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CondanonError

if TYPE_CHECKING:
    from .serve.config import ServeConfig

log = logging.getLogger("condanon.cli")

MISSING = 'condanon serve needs the serve extra: pip install "condanon[serve]" (FastAPI, uvicorn, python-multipart)'


def add_parser(sub: Any) -> None:
    """Add ``serve`` to the command's subparsers."""
    from .serve.config import MiB, ServeConfig, default_spool, default_state

    defaults = ServeConfig(no_auth=True, warm_up=False)
    serve = sub.add_parser(
        "serve",
        help="an HTTP service (anonymise, analyse, jobs) with a review page at /",
        description="Keys: CONDANON_API_KEYS and CONDANON_REVIEWER_KEYS (comma-separated) or --key-file. "
        "Serve on 127.0.0.1 and put a TLS proxy in front for anything else (docs/serve.md).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=None, help="requests anonymised at once (default: one per core)")
    serve.add_argument(
        "--threads", action="store_true", help="workers are threads sharing one set of models (default: processes)"
    )
    serve.add_argument("--queue", type=int, default=defaults.queue, help="requests that may wait; then 503")
    serve.add_argument("--method", default=defaults.method, help="the method of requests that name none")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--key-file", help="file of keys, one per line: KEY or 'KEY reviewer'")
    serve.add_argument("--no-auth", action="store_true", help="accept requests without a key (a trusted network only)")
    serve.add_argument("--state", default=str(default_state()), help="job registry and results (default: %(default)s)")
    serve.add_argument("--spool", default=str(default_spool()), help="where uploaded job inputs wait (%(default)s)")
    serve.add_argument("--root", help="folder that path jobs may read (default: path jobs are off)")
    serve.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_bytes / MiB)
    serve.add_argument("--max-job-upload-mb", type=float, default=defaults.max_job_upload_bytes / MiB)
    serve.add_argument("--max-megapixels", type=float, default=defaults.max_pixels / 1e6)
    serve.add_argument("--max-video-seconds", type=float, default=defaults.max_video_seconds)
    serve.add_argument("--timeout", type=float, default=defaults.request_timeout, help="seconds per request")
    serve.add_argument("--result-hours", type=float, default=defaults.result_ttl / 3600, help="results kept this long")
    serve.add_argument("--cors-origin", action="append", default=[], help="allow browser calls from this origin")
    serve.add_argument(
        "--keep-originals", action="store_true", help="keep uploaded job inputs after their job (for audit)"
    )
    serve.set_defaults(func=cmd_serve)


def config_of(args: argparse.Namespace) -> ServeConfig:
    """Return the `ServeConfig` of the command line and the key environment variables."""
    from .serve.config import MiB, ServeConfig, keys_from_env, read_key_file
    from .workers import default_workers

    clients, reviewers = keys_from_env("CONDANON_API_KEYS"), keys_from_env("CONDANON_REVIEWER_KEYS")
    if args.key_file:
        more_clients, more_reviewers = read_key_file(args.key_file)
        clients, reviewers = clients + more_clients, reviewers + more_reviewers
    return ServeConfig(
        state=Path(args.state),
        spool=Path(args.spool),
        root=Path(args.root) if args.root else None,
        api_keys=clients,
        reviewer_keys=reviewers,
        no_auth=args.no_auth,
        method=args.method,
        seed=args.seed,
        workers=args.workers if args.workers is not None else default_workers(),
        threads=args.threads,
        queue=args.queue,
        max_upload_bytes=int(args.max_upload_mb * MiB),
        max_job_upload_bytes=int(args.max_job_upload_mb * MiB),
        max_pixels=int(args.max_megapixels * 1e6),
        max_video_seconds=args.max_video_seconds,
        request_timeout=args.timeout,
        result_ttl=args.result_hours * 3600,
        cors_origins=tuple(args.cors_origin),
        keep_originals=args.keep_originals,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until Ctrl-C; return the exit status."""
    try:
        import uvicorn

        from .serve.app import create_app
    except ImportError:
        raise CondanonError(MISSING) from None
    config = config_of(args)
    app = create_app(config)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: put a TLS proxy in front (docs/serve.md); keys travel in every request", args.host
        )
    print(f"condanon serve: http://{args.host}:{args.port}/ ({config.workers} workers)", file=sys.stderr)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        limit_concurrency=max(256, 4 * (config.workers + config.queue)),  # beyond: uvicorn's own plain 503
        timeout_keep_alive=5,
        timeout_graceful_shutdown=30,
    )
    return 0
