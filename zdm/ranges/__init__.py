"""Range work: the token ring cut into ranges, and one coordinator that runs a job per range.

Theory of operation: ``zdm migrate`` and ``zdm validate`` are the same run with a different
job.  Each plans its tables, keeps a checkpoint per table, and gives
:func:`~zdm.ranges.coordinator.run_ranges` the function it runs on one token range (the copy's
``copy_job``, the validation's ``compare_job``); the coordinator runs the ranges not yet done on
an engine, checkpoints each as it finishes, retries a failed one in smaller pieces, and reports
typed events (:mod:`zdm.ranges.events`) that the caller turns into its report.

- :mod:`~zdm.ranges.ring`: Murmur3 token ranges, the ring cut at ownership boundaries;
- :mod:`~zdm.ranges.coordinator` and :mod:`~zdm.ranges.events`: the one coordinator;
- :mod:`~zdm.ranges.engine`: which engine runs the jobs, :mod:`~zdm.ranges.pool` (local worker
  processes) or :mod:`~zdm.ranges.spark` (a Spark cluster's executors);
- :mod:`~zdm.ranges.context`: how range work runs (:class:`~zdm.ranges.context.RunSettings`) and
  each worker's sessions to both clusters (:class:`~zdm.ranges.context.WorkerContext`), with
  its rate limiter (:mod:`~zdm.ranges.ratelimit`) and what batching writes to target needs to
  know (:mod:`~zdm.ranges.batches`).

This package imports nothing of migrate or validate, which build on it.  This file imports
nothing at all, so that the CLI reading ``zdm.ranges.events`` does not load the driver.
"""
