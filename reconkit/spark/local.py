"""A small Spark session on this machine, for notebooks, tests and benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import MissingExtraError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["local_session"]


def local_session(cores: int = 2, *, shuffle_partitions: int = 4, driver_memory: str = "2g",
                  app_name: str = "reconkit") -> SparkSession:
    """A local Spark session (``local[cores]``), or the one already running.

    Parameters
    ----------
    cores : int
        Worker threads.
    shuffle_partitions : int
        Spark's default of 200 makes small jobs slow; a few per core suit one machine.
    driver_memory : str
        The JVM heap (only applies when this call starts the JVM).
    app_name : str

    Notes
    -----
    On a cluster, build the session yourself instead: ``SparkSession.builder.remote("sc://host")``
    (Spark Connect) or ``databricks.connect.DatabricksSession.builder.getOrCreate()``.

    Raises
    ------
    MissingExtraError
        PySpark is not installed (it is the ``spark`` extra, not in the default environment).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as missing:
        raise MissingExtraError("spark", "pyspark", "spark-env") from missing

    session = (SparkSession.builder.master(f"local[{cores}]").appName(app_name)
               .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", driver_memory)
               .config("spark.sql.session.timeZone", "UTC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session
