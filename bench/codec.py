"""``python -m bench.codec DFDC_HELDOUT --weights A --weights B``: how far H.264 moves each model's scores.

A sample of REAL and FAKE crops of a crop folder (``labels.csv``: ``file,video,label``; the held-out
DFDC crops of :mod:`bench.evalsets`) is coded as :func:`dfd_kit.training.augment.h264_code` codes a
training crop: scaled to ``s`` x its side, one libx264 intra frame at a constant rate factor (yuv420p,
or yuv444p as FF++'s c40 videos), scaled back. Each coding's crops are scored like ``dfd score-crops``
(flip, calibrated); the table gives per weights and coding the mean P(FAKE) of each label and the ROC
AUC. A model whose scores follow the coding more than the label ranks footage of different cameras and
compressions by their codec. About 2 minutes a weights file on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from dfd_kit.training.augment import h264_code
from dfd_kit.training.crops import read_crop, score_crops

#: name: (constant rate factor, scale, chroma format), or None for the crop as it is
CODINGS = {
    "none": None,
    "CRF 30 at 1.5x": (30, 1.5, "yuv420p"),
    "CRF 40 at 1.5x": (40, 1.5, "yuv420p"),
    "CRF 40 at 0.6x": (40, 0.6, "yuv420p"),
    "CRF 40 at 0.6x, yuv444p": (40, 0.6, "yuv444p"),
}


def code(image: np.ndarray, crf: int, scale: float, chroma: str = "yuv420p") -> np.ndarray:
    """``image`` (uint8 ``[S, S, 3]`` RGB) scaled by ``scale`` to an even side, H.264-coded in ``chroma``, scaled back."""
    side = image.shape[0]
    coded = max(2, int(round(side * scale / 2)) * 2)
    small = cv2.resize(image, (coded, coded), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return cv2.resize(h264_code(small, crf, chroma), (side, side), interpolation=cv2.INTER_LINEAR)


def coded_folders(folder: Path, out: Path, per_label: int, seed: int) -> tuple[dict[str, Path], np.ndarray]:
    """One crop folder per coding of :data:`CODINGS`, each with the same ``per_label`` REAL and FAKE crops (PNG),
    and the crops' labels in their ``labels.csv`` order (bool ``[N]``, True for FAKE)."""
    labels = pd.read_csv(folder / "labels.csv")
    sample = pd.concat([g.sample(min(per_label, len(g)), random_state=seed) for _, g in labels.groupby("label")])
    folders = {}
    for i, (name, coding) in enumerate(CODINGS.items()):
        target = out / f"coding{i}"
        target.mkdir(parents=True)
        rows = []
        for row in sample.itertuples():
            image = read_crop(folder / row.file)
            if coding is not None:
                image = code(image, *coding)
            file = Path(row.file).with_suffix(".png").name
            cv2.imwrite(str(target / file), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            rows.append({"file": file, "video": row.video, "label": row.label})
        pd.DataFrame(rows).to_csv(target / "labels.csv", index=False)
        folders[name] = target
    return folders, (sample["label"] == "FAKE").to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="crop folder with labels.csv (file,video,label)")
    parser.add_argument("--weights", action="append", required=True, help="weights file, or several joined by commas (repeat)")
    parser.add_argument("--per-label", type=int, default=150, help="crops of each label")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folders, fake = coded_folders(args.folder, Path(tmp), args.per_label, args.seed)
        for weights in args.weights:
            for name, folder in folders.items():
                p = score_crops(folder, weights)["label"].to_numpy()
                rows.append({"weights": weights, "coding": name,
                             "real_mean": p[~fake].mean(), "fake_mean": p[fake].mean(), "auc": roc_auc_score(fake, p)})
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.3f"))


if __name__ == "__main__":
    main()
