"""Throughput benchmark of dfd_kit against a naive baseline and per-stage floors (``python -m bench``)."""
