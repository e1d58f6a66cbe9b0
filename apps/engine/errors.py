"""Domain errors of the engine. Each carries a message fit to show the user as a condition."""


class EngineError(Exception):
    """Base class: something the user must see on the application."""


class SourceError(EngineError):
    """Git could not be reached or the revision does not exist (ComparisonError condition)."""


class RenderError(EngineError):
    """Manifests could not be produced from the source (ComparisonError condition).

    `path` is relative to the repository root; `line` is 1-based when known.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path, self.line = path, line
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")


class ClusterError(EngineError):
    """The cluster could not be reached or refused us (unreachable, unauthorised, forbidden)."""


class ResourceError(EngineError):
    """The API server rejected one resource (validation, unknown kind, missing CRD, forbidden).

    `status` is the HTTP status code when the server answered (404, 403, 422, ...).
    """

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)
