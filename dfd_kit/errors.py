"""Typed errors raised by the pipeline stages.

A stage that cannot do its job raises one of these; only the folder loop in :mod:`dfd_kit.inference.predict`
turns them into the fallback value plus a logged reason.
"""


class DFDError(Exception):
    """Base class of every error dfd_kit raises on purpose."""


class DecodeError(DFDError):
    """The video could not be opened, or no requested frame could be decoded."""


class NoFaceError(DFDError):
    """No face passed the detector's thresholds in any sampled frame."""


class NoScoreError(DFDError):
    """No finite face score was left to aggregate."""


class BudgetExceeded(DFDError):
    """The time budget leaves no room to process this video."""


class WeightsError(DFDError):
    """Weights are missing, unreadable, or made for another model config."""


class InputError(DFDError):
    """A user-supplied folder, table or file is missing or malformed."""
