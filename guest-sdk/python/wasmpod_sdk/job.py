"""The running job: its id, cancellation, progress, streamed chunks and log
lines attributed to it.
"""

from enum import Enum

from componentize_py_types import Err

try:
    from wit_world.imports import job as _wit
except ImportError:
    # An HTTP handler (world http-handler) has no job: its log lines go
    # through the log interface, and progress and streaming do not apply.
    _wit = None
    from wit_world.imports import log as _http_log

from ._glue import encode_json
from .errors import JobError


class LogLevel(str, Enum):
    """Severity of a log line; plain strings ("info", ...) work too."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


def _to_json(value, what):
    try:
        return encode_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise JobError(f"the {what} could not be serialized to JSON: {type(exc).__name__}: {exc}") from None


def _require_job(what):
    if _wit is None:
        raise JobError(
            f"{what} is for queue handlers; an HTTP handler streams its response instead "
            "(return an iterable from the route)"
        )


def progress(value):
    """Report progress (any JSON-able value); while the job runs, `/status`
    shows the latest value as its `output`."""
    _require_job("progress")
    try:
        _wit.progress(_to_json(value, "progress value"))
    except Err as err:
        raise JobError(f"the host refused the progress value: {err.value}") from None


def stream(value):
    """Stream a partial output (any JSON-able value); clients read each chunk
    once, in order, from `/stream`."""
    _require_job("stream")
    try:
        _wit.stream(_to_json(value, "streamed chunk"))
    except Err as err:
        raise JobError(f"the host refused the streamed chunk: {err.value}") from None


def log(message, level=LogLevel.INFO):
    """Write a log line attributed to the job (or to the worker in init)."""
    try:
        level = LogLevel(level)
    except ValueError:
        names = ", ".join(lv.value for lv in LogLevel)
        raise ValueError(f"unknown log level {level!r}; expected one of {names}") from None
    if _wit is None:
        _http_log.log(_http_log.Level[level.name], str(message))
    else:
        _wit.log(_wit.LogLevel[level.name], str(message))


def debug(message):
    log(message, LogLevel.DEBUG)


def info(message):
    log(message, LogLevel.INFO)


def warn(message):
    log(message, LogLevel.WARN)


def error(message):
    log(message, LogLevel.ERROR)


def job_id():
    """The id of the job being handled; empty during init (and in an HTTP
    handler)."""
    return _wit.id() if _wit is not None else ""


def cancelled():
    """True once the job was cancelled; a long handler should check now and
    then and return early."""
    return _wit.cancelled() if _wit is not None else False
