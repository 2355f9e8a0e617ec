"""The FastAPI application factory: models behind OpenAI-shaped endpoints, vision endpoints, the page."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware

from .._version import __version__
from . import adapters as _adapters  # noqa: F401  (registers every adapter kind)
from .adapters.base import Adapter
from .adapters.registry import open_model
from .config import ServeConfig
from .errors import install_handlers
from .hub import ModelHub
from .metrics import Metrics, RequestMetrics
from .security import BodyLimit, require_api_key

STATIC = Path(__file__).parent / "static"


def parse_model_arg(arg: str) -> tuple[str, Path]:
    """`DIR` or `NAME=DIR` -> (name, path); the name defaults to the folder name."""
    name, sep, path = arg.partition("=")
    if not sep:
        name, path = "", arg
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"--model {arg}: {p} does not exist")
    return name or p.resolve().name, p


def load_models(model_args: list[str], config: ServeConfig) -> list[Adapter]:
    if not model_args:
        raise ValueError("give at least one --model DIR")
    return [open_model(name, path, config) for name, path in map(parse_model_arg, model_args)]


def create_app(adapters: list[Adapter], config: ServeConfig | None = None) -> FastAPI:
    """An app serving `adapters` (see `load_models`); engines start and stop with the app's lifespan."""
    config = config or ServeConfig()
    config.validate()
    hub = ModelHub(adapters)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        hub.start()
        try:
            yield
        finally:
            hub.close()

    app = FastAPI(title="lingvis", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible serving of lingvis language and vision-language models")
    app.state.hub, app.state.config, app.state.metrics = hub, config, Metrics(hub)
    install_handlers(app)
    from .routes_meta import open_router, router as meta_router
    from .routes_text import router as text_router
    from .routes_images import router as images_router
    from .routes_vision import router as vision_router
    from .routes_video import router as video_router

    app.include_router(open_router)
    app.include_router(meta_router)
    for r in (text_router, vision_router, images_router, video_router):
        app.include_router(r, dependencies=[Depends(require_api_key)])
    if config.kg is not None:
        from .routes_kg import mount_kg

        mount_kg(app, config.kg)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    # the last added runs first: CORS headers go on every answer (401, 413 included), and refused bodies count
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    paths = {r.path for router in (open_router, meta_router, text_router, vision_router, video_router)
             for r in router.routes}
    app.add_middleware(RequestMetrics, metrics=app.state.metrics, paths=paths)
    if config.allowed_origins:
        app.add_middleware(CORSMiddleware, allow_origins=config.allowed_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False, max_age=600)
    return app
