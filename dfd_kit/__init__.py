"""dfd_kit: deepfake video detection for DFDC-format folders.

The video → row path, one module per stage::

    sampling.py  →  decode.py  →  faces.py  →  models.py  →  aggregate.py  →  submission.py
    (indices)       (Frames)      (Faces)      (scores)      (P(FAKE))        (filename,label)

``predict.py`` strings them together; ``dfd`` (``cli.py``) is the command line. Heavy frameworks
(torch, TensorFlow) are imported only by the modules that need them, torch first.
"""

__version__ = "0.1.0"
