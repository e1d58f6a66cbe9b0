"""RQ entry point of the image write-back (queued by the registry webhooks on `sync`)."""
from . import writeback


def write_back(image_repository: str, tag: str, digest: str = "") -> dict:
    outcome = writeback.write_back(image_repository, tag, digest)
    return {"updated": outcome.updated, "skipped": outcome.skipped, "failed": outcome.failed}
