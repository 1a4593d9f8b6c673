"""``POST /retrain`` (starts a background retraining job) and ``GET /jobs/{job_id}``."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sparecast.service.deps import API_KEY_RESPONSES, ApiKeyDep, StateDep
from sparecast.service.errors import NotFound, short
from sparecast.service.models import ErrorOut, JobOut

__all__ = ["router"]

# No common prefix: POST /retrain starts a job, GET /jobs/{job_id} reads it (public paths).
router = APIRouter(tags=["operations"])


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses={
        **API_KEY_RESPONSES,
        409: {
            "model": ErrorOut,
            "description": "a job is running, no source to retrain on, or the production loop "
            "serves the directory (challengers go through `sparecast pipeline run weekly`)",
        },
    },
    dependencies=[ApiKeyDep],
    summary="Start retraining",
)
async def retrain(state: StateDep, response: Response) -> JobOut:
    """Run the pipeline on ``service.retrain_source`` (default: the source in ``DIR/run.json``)
    into the data directory in a background process; the new run goes into the store and the
    served model version changes when it is done. One job at a time: while one runs, 409 names
    it. Poll ``GET /jobs/{job_id}`` (also in the ``Location`` header). In a directory the
    production loop serves (its store has a champion) a retrain would not be served: 409, a
    challenger goes through ``sparecast pipeline run weekly``."""
    job = await run_in_threadpool(state.jobs.start)  # JobConflict, NoRetrainSource: 409
    response.headers["Location"] = f"/jobs/{job.job_id}"
    return job


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={404: {"model": ErrorOut, "description": "unknown job"}},
    summary="State of a retraining job",
)
async def job(job_id: str, state: StateDep) -> JobOut:
    """``queued`` -> ``running`` (with the pipeline's last progress step) -> ``succeeded`` (with
    the new model version) or ``failed`` (with the error)."""
    found = await run_in_threadpool(state.jobs.get, job_id)
    if found is None:
        raise NotFound(f"unknown job {short(job_id)}")
    return found
