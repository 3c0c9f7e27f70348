"""The batch layer: many images from one graph (torch-free, like core).

`spec` expands a workflow plus axes of `ID.param` values into numbered jobs, `order` groups them
by model, `manifest` records finished jobs so a batch resumes, `runner` runs them in-process and
writes their files, `sheet` draws the contact sheet. `ray_runner` runs the same jobs on a Ray
cluster and is imported only when asked for.
"""
from nodeforge.batch.manifest import Manifest
from nodeforge.batch.runner import BatchPlan, BatchSummary, JobOutcome, check_jobs, execute_job, plan_batch, run_batch
from nodeforge.batch.spec import Axis, BatchSpec, BatchSpecError, Job, SeedPolicy, expand, load_spec, parse_axis

__all__ = ["Axis", "BatchPlan", "BatchSpec", "BatchSpecError", "BatchSummary", "Job", "JobOutcome", "Manifest",
           "SeedPolicy", "check_jobs", "execute_job", "expand", "load_spec", "parse_axis", "plan_batch", "run_batch"]
