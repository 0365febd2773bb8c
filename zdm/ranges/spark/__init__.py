"""The ``spark`` engine: range jobs on the executors of a Spark cluster, through pyspark
(``pip install 'zdm[spark]'``).

- :mod:`~zdm.ranges.spark.master`: whether it can run (pyspark, the master URL, reachable);
- :mod:`~zdm.ranges.spark.context`: the Spark context, and zdm shipped to the executors;
- :mod:`~zdm.ranges.spark.scheduler`: the driver's side, which hands ranges to Spark as tasks
  and reports each one as it finishes;
- :mod:`~zdm.ranges.spark.executor`: the executors' side, one range per task.

pyspark itself is imported only where a function needs it, so that zdm runs without it.
"""

from zdm.ranges.spark.context import prepare, spark_context, zdm_zip
from zdm.ranges.spark.master import check
from zdm.ranges.spark.scheduler import run_jobs

__all__ = ["check", "prepare", "run_jobs", "spark_context", "zdm_zip"]
