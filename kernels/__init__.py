"""Numba kernels of evcf_fast, installed as ``evcf_fast.kernels``.

Raw arrays in, raw arrays out: no torch, no polars, no validation and no I/O here (the public
modules validate and convert); every kernel uses ``cache=True``. Modules are imported on demand
(``from evcf_fast.kernels import ranking``) so that importing the package compiles nothing.

* ``ranking``: fused masked top-K and ranking metrics (``evcf_fast.metrics``);
* ``split``, ``synth``: the data engine's split and synthetic-data kernels (``evcf_fast.data``);
* ``csr``: the one-pass structural check of a loaded dataset's CSR arrays, and parallel
  per-column entry counts (training popularity for the beyond-accuracy metrics).
"""
