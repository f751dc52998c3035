"""The study: profiles, the experiment registry, the run/notebook runner and notebook helpers."""

from __future__ import annotations


def run_study(*args, **kwargs) -> int:
    """See :func:`lanet_core.study.runner.run_study`."""
    from lanet_core.study.runner import run_study as _run

    return _run(*args, **kwargs)
