"""Training: face crops cut as inference cuts them, the classifier trained, calibrated and scored.

``extract.py`` cuts the faces of one video (``dispatch.py`` runs a whole extraction in this
process, a process pool or on Ray: ``ray_extract.py``); ``crops.py`` reads ready-cut crop folders;
``tables.py`` is the faces table; ``split.py`` splits it by group; ``selfblend.py`` and
``augment.py`` make pseudo-fakes and video-like crops; ``train.py`` (with ``dali_input.py`` on
GPUs) trains; ``evaluate.py`` holds the metrics; ``calibrate.py`` fits what the weights' manifest
tells inference. Training uses :mod:`dfd_kit.inference` and :mod:`dfd_kit.models`, never the reverse.
"""
