"""Current details written when they are read, not on every workflow task.

The Web UI (and ``temporal workflow metadata``) reads a workflow's "Current Details"
through the built-in ``__temporal_workflow_metadata`` query. The coordinator's page
tells its whole queue, so writing it again on every request it admits cost the
coordinator's hottest path a sort of the queue per task, to keep a text nobody may
read. A workflow that defines ``current_details()`` (``DetailsOnRead``) has it
called when the query is answered instead: the page is as fresh as the workflow's
last task, and costs nothing while nobody looks.

A query must not change the workflow, and it does not here: the text goes into the
query's answer only, never through ``workflow.set_current_details``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from temporalio import workflow
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.worker import (
    HandleQueryInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

METADATA_QUERY = "__temporal_workflow_metadata"


@runtime_checkable
class DetailsOnRead(Protocol):
    """A workflow whose current details are written when the metadata query reads them."""

    def current_details(self) -> str:
        """Return the markdown the Web UI shows as "Current Details"."""


class _DetailsOnReadInbound(WorkflowInboundInterceptor):
    async def handle_query(self, input: HandleQueryInput) -> Any:
        answer = await super().handle_query(input)
        if input.query == METADATA_QUERY and isinstance(answer, WorkflowMetadata):
            instance = workflow.instance()
            if isinstance(instance, DetailsOnRead):
                answer.current_details = instance.current_details()
        return answer


class CurrentDetailsOnRead(Interceptor):
    """The worker interceptor that answers the metadata query with fresh details."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _DetailsOnReadInbound
