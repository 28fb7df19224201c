"""The component's exports (`init`, `handle` of world
wasmpod:serverless/handler), implemented over the registry. The entry module
that build.sh generates re-exports `WitWorld` from here, which is where
componentize-py looks for the exports.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import job as _job

from ._glue import REGISTRY, HandlerFailure


def _report(failure):
    # The job's error carries `Type: message`; the traceback goes to the
    # job's log, where a developer looks next.
    if failure.details:
        _job.log(_job.LogLevel.ERROR, failure.details.rstrip())
    return Err(failure.message)


class WitWorld(wit_world.WitWorld):
    def init(self) -> None:
        try:
            REGISTRY.run_init()
        except HandlerFailure as failure:
            raise _report(failure) from None

    def handle(self, job) -> str:
        try:
            return REGISTRY.run_handle(job.input)
        except HandlerFailure as failure:
            raise _report(failure) from None
