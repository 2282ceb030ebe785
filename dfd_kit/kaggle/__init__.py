"""Kaggle: the offline bundle (``bundle.py``: a wheel dataset and a kernel folder) and the helpers the
notebooks call (``notebook.py``). Uses inference and models; only the command line imports it.
"""
