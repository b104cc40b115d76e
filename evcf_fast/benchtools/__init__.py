"""Performance-regression tooling around the pytest-benchmark suite in ``bench/``.

* :mod:`~evcf_fast.benchtools.results`: load and validate saved runs (pytest-benchmark JSON);
* :mod:`~evcf_fast.benchtools.stats`: bootstrap intervals of ratios of medians;
* :mod:`~evcf_fast.benchtools.compare`: calibration-normalised, noise-aware comparison;
* :mod:`~evcf_fast.benchtools.report`: Markdown table and PNG plots;
* :mod:`~evcf_fast.benchtools.calibration`: the fixed workloads timed in every session;
* :mod:`~evcf_fast.benchtools.metadata`: versions, threads and git state stored with each run;
* :mod:`~evcf_fast.benchtools.cli`: ``evcf bench compare|report|run``.

Nothing is imported here, so ``evcf --help`` stays fast.
"""
