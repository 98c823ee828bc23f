"""``/api/v1/deployments``: canaries, their stage and weight, and every verdict."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.params import Parameter

from api.rest.params import page_limit
from api.rest.resources import resources_of
from api.service import DeploymentPage
from core.decisions import Deployment

__all__ = ["DeploymentsController"]

Status = Literal["running", "paused", "watching", "promoted", "rolled_back"]


class DeploymentsController(Controller):
    """Deployments of approved decisions."""

    path = "/api/v1/deployments"
    tags = ["deployments"]

    @get("/", summary="Deployments, newest first", opt={"permission": "deployments.read"})
    async def list_deployments(
        self,
        request: Request[Any, Any, Any],
        app: Annotated[str | None, Parameter(max_length=512)] = None,
        task: Annotated[str | None, Parameter(max_length=512)] = None,
        status: Annotated[list[Status] | None, Parameter(description="any of")] = None,
        cursor: Annotated[str | None, Parameter(max_length=1024)] = None,
        limit: Annotated[int, page_limit(500)] = 50,
    ) -> DeploymentPage:
        """One page of deployments (without verdicts) and the next page's cursor."""
        return await asyncio.to_thread(
            resources_of(request.app).deployments.list,
            app=app,
            task=task,
            status=status,
            cursor=cursor,
            limit=limit,
        )

    @get(
        "/{deployment_id:str}",
        summary="One deployment with every verdict: metric values, thresholds, p-values",
        opt={"permission": "deployments.read"},
    )
    async def get_deployment(
        self,
        request: Request[Any, Any, Any],
        deployment_id: Annotated[str, Parameter(max_length=64)],
    ) -> Deployment:
        """The deployment and its verdicts."""
        return await asyncio.to_thread(resources_of(request.app).deployments.get, deployment_id)
