"""Background jobs (UI-agnostic): a process-wide manager running long work in worker threads.

``get_manager().submit(fn, kind=..., title=..., owner=..., device=..., **kwargs)`` queues
``fn(ctx, **kwargs)``; pages poll ``get_manager().get(job_id)`` and call ``cancel(job_id)``.
"""

from nnkit.jobs.manager import JobContext, JobManager, JobStatus, JobView, get_manager, lane_of, one_line
from nnkit.jobs.tasks import distributed_train_task, quick_start_config, train_task

__all__ = ["JobContext", "JobManager", "JobStatus", "JobView", "get_manager", "lane_of", "one_line",
           "quick_start_config", "train_task", "distributed_train_task"]
