"""Inference: one video in, one row of ``submission.csv`` out.

The stages, in the order a video meets them::

    sampling.py  →  decode.py  →  faces.py  →  models/  →  aggregate.py  →  submission.py
    (indices)       (Frames)      (Faces)      (scores)    (P(FAKE))        (filename,label)

``predict.py`` strings them together, top to bottom; ``worker.py`` runs decoding and detection in a
restartable process, ``budget.py`` keeps the run inside its time, ``report.py`` writes the HTML
report of a run. Inference uses :mod:`dfd_kit.models` and the base modules, never training or Kaggle code.
"""
