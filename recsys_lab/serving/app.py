"""``recsys-lab serve``: the scoring service over HTTP (FastAPI + uvicorn; the only module importing them and
``prometheus_client``).

==============================  ==================================================================================
``GET /recommendations/{user}``  top-k for a user (``?k=10``): ids, titles, scores and the path used (``model``,
                                 ``blend``, ``update``, ``fold-in``, ``popularity``: an unknown user gets popularity
                                 and a note)
``POST /recommendations``        ``{"items": [...], "k": 10}``: onboarding by fold-in of picked items
``GET /similar/{item}``          the ``k`` most similar items
``POST /events``                 interactions in the run's update-file columns, journalled and fsynced before the
                                 202 (:mod:`recsys_lab.serving.events`); token-protected when a token is set
``GET /health``                  run id, update version, loaded at, items, event-to-served lag p50/p99, refusals
``GET /metrics``                 Prometheus text: requests, latency histogram, errors, events folded
``GET /``                        the comparison page (``/api/runs``, ``/api/items``, ``/api/personas``,
                                 ``/api/compare`` feed it); ``/runs/{id}/report.html`` a run's report, read-only
==============================  ==================================================================================

Bad input is a 422 naming the field (FastAPI's ``{"detail": [{"loc": [...], "msg": ...}]}``); a body above
``serve.max_body_bytes`` a 413. The served run follows ``runs/PRODUCTION`` (:class:`recsys_lab.serving.live.Live`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from threadpoolctl import threadpool_limits
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from recsys_lab.config import ServeConfig
from recsys_lab.errors import ConfigError, RecsysLabError, RecsysLabWarning, RunError
from recsys_lab.runs.registry import resolve
from recsys_lab.serving import page
from recsys_lab.serving.events import EventError, Folder, check_events
from recsys_lab.serving.live import Live
from recsys_lab.serving.recommend import recommend, recommend_for_items
from recsys_lab.serving.similar import similar
from recsys_lab.store.folder import RunFolder

__all__ = ["create_app", "serve", "K_MAX", "TOKEN_ENV"]

log = logging.getLogger(__name__)

K_MAX = 1000
"""The largest ``k`` a request may ask for."""

TOKEN_ENV = "RECSYS_LAB_SERVE_TOKEN"
"""Environment variable holding the ``POST /events`` token (overrides ``serve.token``)."""


def _invalid(loc: list, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


def _frame(df: Any, run_id: str, k: int, note: str | None = None, **extra: Any) -> dict[str, Any]:
    rows = df.drop("path").to_dicts()
    path = df["path"][0] if df.height else None
    if note is None and len(rows) < k:
        note = f"only {len(rows)} item(s) left to recommend"
    return {"run_id": run_id, "k": k, "path": path, **extra, "note": note, "items": rows}


async def _json_body(request: Request, limit: int) -> Any:
    """The request body parsed as JSON: 413 above ``limit`` bytes, 422 when it is not JSON."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > limit:
        raise HTTPException(413, detail=f"request body of {size} bytes is above the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, detail=f"request body is above the limit of {limit} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(["body"], f"malformed JSON: {exc}") from None


def create_app(runs_dir: str | Path, *, run: str = "production", config: ServeConfig | None = None) -> Any:
    """The service as an ASGI app (run it with uvicorn: :func:`serve`).

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    run : str
        The run to serve (default ``production``, followed on promotion).
    config : ServeConfig, optional
        ``[serve]`` settings (defaults when None).

    Returns
    -------
    ASGI application
        The FastAPI app (``.app``) wrapped to measure every request; its background threads (pointer polling,
        event folding) start and stop with the lifespan.

    Raises
    ------
    RecsysLabError
        The run cannot be served (unknown, damaged, snapshot gone).
    """
    cfg = config or ServeConfig()
    runs_dir = Path(runs_dir)
    token = os.environ.get(TOKEN_ENV) or cfg.token
    warnings.filterwarnings("ignore", category=RecsysLabWarning)  # said in each response's note instead
    threadpool_limits(1, user_api="blas")  # one BLAS thread per request: requests run side by side, not BLAS
    live = Live(runs_dir, run, cfg.poll_seconds)
    folder = Folder(runs_dir, lambda: live.current, cfg.update_seconds)
    registry = CollectorRegistry()
    requests = Counter("recsys_requests", "HTTP requests", ["endpoint", "status"], registry=registry)
    errors = Counter("recsys_errors", "HTTP requests answered 4xx or 5xx", ["endpoint", "status"], registry=registry)
    latency = Histogram("recsys_request_seconds", "Request latency", ["endpoint"], registry=registry,
                        buckets=(.001, .0025, .005, .01, .02, .03, .05, .075, .1, .25, .5, 1, 2.5))
    Gauge("recsys_events_folded", "Events folded into update versions by this process",
          registry=registry).set_function(lambda: folder.folded)
    Gauge("recsys_event_lag_p99_seconds", "Event-to-served lag, p99 of the last 10,000",
          registry=registry).set_function(lambda: folder.lag()["p99"] or 0.0)
    Gauge("recsys_swaps", "Promotions swapped in", registry=registry).set_function(lambda: live.swaps)

    async def lifespan(app: FastAPI):  # noqa: ANN202
        live.start()
        folder.start()
        yield
        folder.stop()
        live.stop()

    app = FastAPI(title="recsys-lab", lifespan=lifespan)
    app.state.live, app.state.folder = live, folder

    def user_list(user_id: str, k: int) -> dict[str, Any]:
        m = live.current  # read once: a swap does not change the run under this request
        try:
            key = m.user_key(user_id)
        except RunError as exc:
            raise _invalid(["path", "user_id"], str(exc)) from None
        df = recommend(runs_dir, key, run=m.run_id, k=k)
        note = None
        if df.height and df["path"][0] == "popularity":
            known = bool(m.users.lookup([key])[1][0]) or m.user_rows(key).height > 0
            note = (f"user_id {key!r} has no positive interaction" if known else f"unknown user_id {key!r}") + \
                ": served the most-popular items"
        return _frame(df, m.run_id, k, note, user_id=key)

    @app.get("/recommendations/{user_id}")
    def get_recommendations(user_id: str, k: int = Query(10, ge=1, le=K_MAX)) -> JSONResponse:
        """Top-k for a user."""
        return JSONResponse(user_list(user_id, k))

    @app.post("/recommendations")
    async def post_recommendations(request: Request) -> dict[str, Any]:
        """Top-k for a new user from picked items: ``{"items": [...], "k": 10}``."""
        body = await _json_body(request, cfg.max_body_bytes)
        if not isinstance(body, dict):
            raise _invalid(["body"], "expected an object {\"items\": [...], \"k\": 10}")
        k = body.get("k", 10)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= K_MAX:
            raise _invalid(["body", "k"], f"expected an integer in [1, {K_MAX}], got {k!r}")
        items = body.get("items")
        if not isinstance(items, list) or not items or not all(isinstance(x, (int, str)) and not isinstance(x, bool)
                                                                for x in items):
            raise _invalid(["body", "items"], "expected a non-empty list of item ids")
        m = live.current
        _, ok = m.items.lookup([str(x).strip() for x in items])
        if not ok.all():
            bad = [j for j in range(len(items)) if not ok[j]]
            raise _invalid(["body", "items", bad[0]], f"unknown item(s) {[items[j] for j in bad]} in run {m.run_id}")
        try:
            df = await run_in_threadpool(recommend_for_items, runs_dir, items, run=m.run_id, k=k)
        except ConfigError as exc:
            raise _invalid(["body", "items"], str(exc)) from None
        return _frame(df, m.run_id, k, picks=items)

    @app.get("/similar/{item_id}")
    def get_similar(item_id: str, k: int = Query(10, ge=1, le=K_MAX)) -> dict[str, Any]:
        """The k items most similar to an item."""
        m = live.current
        idx, ok = m.items.lookup([item_id.strip()])
        if not ok[0]:
            raise _invalid(["path", "item_id"], f"unknown item {item_id!r} in run {m.run_id}")
        df = similar(runs_dir, m.item_ids[idx[0]].item(), k=k, run=m.run_id)
        return _frame(df, m.run_id, k, item_id=m.item_ids[idx[0]].item())

    @app.post("/events", status_code=202)
    async def post_events(request: Request) -> dict[str, Any]:
        """Interactions, journalled (fsynced) before the answer; folded every ``serve.update_seconds``."""
        if token:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise HTTPException(401, detail="POST /events needs 'Authorization: Bearer <token>'",
                                    headers={"WWW-Authenticate": "Bearer"})
        body = await _json_body(request, cfg.max_body_bytes)
        events = body.get("events") if isinstance(body, dict) else body
        try:
            records = check_events(live.current, events)
        except EventError as exc:
            loc = [int(x) if x.isdigit() else x for x in exc.field.replace("[", ".").replace("]", "").split(".")]
            raise _invalid(["body", *loc], exc.reason) from None
        end = await run_in_threadpool(folder.journal.append, records)
        return {"accepted": len(records), "journal_bytes": end, "folded_within_s": cfg.update_seconds}

    @app.get("/health")
    def health() -> dict[str, Any]:
        """The served run, its update version, lag and refusals."""
        out = live.health()
        pending = folder.pending()
        status = "ok" if live.refused is None and folder.last_error is None else "degraded"
        return {"status": status, **out, "lag_s": folder.lag(), "events_folded": folder.folded,
                "events_pending_bytes": pending, "fold_error": folder.last_error,
                "update_seconds": cfg.update_seconds}

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        """The comparison page."""
        return HTMLResponse(resources.files("recsys_lab.serving").joinpath("static/compare.html").read_text("utf-8"))

    @app.get("/api/runs")
    def api_runs() -> dict[str, Any]:
        """Runs to compare and the default pair."""
        return page.runs_choice(runs_dir)

    @app.get("/api/items")
    def api_items(q: str = Query("", max_length=200), limit: int = Query(20, ge=1, le=100)) -> list[dict]:
        """Title search (as you type)."""
        return page.search_titles(live.current, q, limit)

    @app.get("/api/personas")
    def api_personas() -> list[dict]:
        """The shipped personas."""
        return page.persona_names()

    @app.get("/api/compare")
    def api_compare(a: str = Query(...), b: str = Query(...), k: int = Query(10, ge=1, le=100),
                    user: str | None = None, items: str | None = None, persona: str | None = None) -> dict:
        """Two runs side by side."""
        picks = [x.strip() for x in items.split(",") if x.strip()] if items is not None else None
        try:
            return page.compare(runs_dir, a, b, k=k, user=user, items=picks, persona=persona)
        except ConfigError as exc:
            raise _invalid(["query", exc.parameter or "user"], str(exc)) from None
        except RunError as exc:
            raise _invalid(["query", "user" if user is not None else "a"], str(exc)) from None

    @app.get("/runs/{run_id}/report.html")
    def report(run_id: str) -> FileResponse:
        """A run's report, read-only (only a run id or prefix resolved under the runs directory)."""
        try:
            path = RunFolder(resolve(runs_dir, run_id)).report
        except RunError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        if not path.is_file():
            raise HTTPException(404, detail=f"run {run_id} has no report.html")
        return FileResponse(path, media_type="text/html")

    @app.exception_handler(RecsysLabError)
    async def recsys_error(request: Request, exc: RecsysLabError) -> JSONResponse:
        parameter = getattr(exc, "parameter", None)
        if isinstance(exc, ConfigError) and parameter:
            return JSONResponse({"detail": [{"loc": ["query", parameter], "msg": str(exc), "type": "value_error"}]},
                                status_code=422)
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=503 if isinstance(exc, RunError) else 500)

    return _Measured(app, requests, errors, latency)


class _Measured:
    """The app wrapped in a plain ASGI middleware counting requests, errors and latency per route (Starlette's
    ``BaseHTTPMiddleware`` costs about a millisecond per request). Attribute access is passed to the app."""

    def __init__(self, app: FastAPI, requests: Any, errors: Any, latency: Any) -> None:
        self.app, self._requests, self._errors, self._latency = app, requests, errors, latency

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "other")
            self._latency.labels(endpoint).observe(time.perf_counter() - t0)
            self._requests.labels(endpoint, str(status[0])).inc()
            if status[0] >= 400:
                self._errors.labels(endpoint, str(status[0])).inc()


def serve(runs_dir: str | Path, *, run: str = "production", config: ServeConfig | None = None,
          log_level: str = "info") -> None:
    """Serve until stopped (Ctrl-C, SIGTERM).

    Parameters
    ----------
    runs_dir : str or Path
    run : str
        The run to serve (default ``production``, followed).
    config : ServeConfig, optional
        Host, port and the rest of ``[serve]``.
    log_level : str
        uvicorn's log level.

    Raises
    ------
    RecsysLabError
        The run cannot be served.
    """
    import uvicorn

    cfg = config or ServeConfig()
    app = create_app(runs_dir, run=run, config=cfg)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=log_level, access_log=False)
