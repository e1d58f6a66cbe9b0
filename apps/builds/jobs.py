"""RQ entry points of the builds (queue "builds", run by the forking build worker)."""
from . import pipeline


def run_build(build_id: int) -> str | None:
    build = pipeline.run(build_id)
    return build.status if build is not None else None
