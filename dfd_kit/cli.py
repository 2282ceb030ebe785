"""``dfd``: the command line. Each command parses its options and calls the same function the tests call."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Deepfake video detection for DFDC-format folders.")


def _setup_logging(verbose: bool) -> None:
    """dfd_kit's log lines; third-party start-up noise only with ``--verbose`` (:mod:`dfd_kit.console`)."""
    from .console import setup

    setup(verbose)


def _command_line() -> str:
    """The command as typed, for a manifest's ``command`` field."""
    import shlex
    import sys

    return "dfd " + shlex.join(sys.argv[1:])


def _clip(value: str) -> tuple[float, float]:
    low, high = (float(v) for v in value.split(","))
    return low, high


@app.command()
def predict(
    videos_dir: Path = typer.Argument(..., help="Folder of .mp4 videos, or one video file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Submission CSV to write [default: submission.csv, and print the results]."),
    sample_submission: Optional[Path] = typer.Option(None, help="Write exactly these rows, in this order."),
    weights: Optional[str] = typer.Option(None, help="Weights file, or several joined by commas (an ensemble) [default: the bundled default]."),
    config: Optional[str] = typer.Option(None, help="Model config, for weights outside a manifest."),
    frames: Optional[int] = typer.Option(None, help="Frames sampled per video [default: the weights' choice on validation videos, else 17]."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Seconds for the whole run."),
    rule: Optional[str] = typer.Option(None, help="Aggregation rule: mean | median | confident [default: the weights' choice, else mean]."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help="Also score mirrored faces and average [default: the weights' choice, else off]."),
    clip: str = typer.Option("0.01,0.99", help="Clip video probabilities to LOW,HIGH."),
    prior: float = typer.Option(0.5, help="Label for videos that yield no score."),
    precision: str = typer.Option("auto", help="auto | float32 | mixed_bfloat16 | mixed_float16"),
    backend: str = typer.Option("auto", help="Classifier runtime: auto (ONNX Runtime on CPU if installed) | tf | onnx."),
    resume: bool = typer.Option(False, help="Keep rows from an interrupted run's .partial file."),
    isolate: bool = typer.Option(True, help="Decode and detect in worker processes, each replaced if a video hangs or crashes it."),
    workers: Optional[int] = typer.Option(None, min=1, help="Decode+detect worker processes (isolated mode) [default: one per CPU core]."),
    decode: str = typer.Option("exact", help="Frames to decode: exact (the sampled ones) | reference (the nearest reference frames) | keyframes (the nearest keyframes: fastest, fewest frames)."),
    video_timeout: float = typer.Option(300.0, help="Seconds of decoding + detection allowed per video (isolated mode)."),
    report: Optional[Path] = typer.Option(None, help="Also write a self-contained HTML report (and its data as .json beside it)."),
    explain: int = typer.Option(0, help="With --report: Grad-CAM heat maps of the N highest-scoring faces per video (a backward pass each)."),
    report_videos: int = typer.Option(200, help="With --report: the most videos shown with face images (highest P(FAKE) first)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show the frameworks' own log lines and warnings."),
) -> None:
    """Score every video in VIDEOS_DIR (or one video file) and write filename,label (label = P(FAKE))."""
    _setup_logging(verbose)
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .errors import DFDError
    from .inference.predict import predict_folder

    try:
        with logging_redirect_tqdm():
            summary = predict_folder(
                videos_dir,
                out or Path("submission.csv"),
                sample_submission=sample_submission,
                time_budget=time_budget,
                resume=resume,
                isolate=isolate,
                workers=workers,
                decode=decode,
                video_timeout=video_timeout,
                weights=weights,
                config=config,
                frames=frames,
                device=device,
                rule=rule,
                flip=flip,
                clip=_clip(clip),
                prior=prior,
                precision=precision,
                backend=backend,
                report=report,
                explain=explain,
                report_videos=report_videos,
            )
    except DFDError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(summary.report())
    if out is None:
        typer.echo(summary.table())
    if summary.report_path is not None:
        typer.echo(f"report: {summary.report_path}")


@app.command()
def demo(
    folder: Path = typer.Option(Path("demo_out"), help="Where to write the demo videos and the submission."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show the frameworks' own log lines and warnings."),
) -> None:
    """Make a small DFDC-format folder from images bundled with scikit-image, run predict on it, write a report."""
    _setup_logging(verbose)
    import time

    from .demo import make_demo
    from .inference.predict import predict_folder

    t0 = time.perf_counter()
    videos = make_demo(folder / "videos")
    typer.echo(f"demo videos: {videos} ({time.perf_counter() - t0:.1f}s to make)")
    summary = predict_folder(
        videos,
        folder / "submission.csv",
        sample_submission=videos / "sample_submission.csv",
        device=device,
        report=folder / "report.html",
        explain=2,
    )
    typer.echo(summary.report())
    typer.echo(summary.table())
    typer.echo(f"submission: {summary.out.resolve()}")
    typer.echo(f"report: {summary.report_path.resolve()}")


# --- Kaggle: the offline dataset and the kernel (dfd_kit.kaggle.bundle) ----------------------


def _param(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` with VALUE read as JSON when it parses (``frames=32``), else as a string."""
    import json

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise typer.BadParameter(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


@app.command()
def bundle(
    out: Path = typer.Option(..., "--out", help="The Kaggle dataset folder to build (flat)."),
    user: str = typer.Option(..., envvar="KAGGLE_USERNAME", help="Kaggle user (or organisation) that owns both."),
    kernel_out: Optional[Path] = typer.Option(None, help="The kernel folder to build (default: OUT-kernel)."),
    dataset_slug: str = typer.Option("dfd-kit", help="The dataset's slug; mounted at /kaggle/input/SLUG."),
    kernel_slug: str = typer.Option("dfd-kit-inference", help="The kernel's slug (its title is made from it)."),
    dali: bool = typer.Option(True, "--with-dali/--no-dali", help="Ship NVIDIA DALI and its dependencies (~500 MB)."),
    weights: Optional[Path] = typer.Option(None, help="Weights folder with manifest.json (default: the bundled one)."),
    extra: list[str] = typer.Option([], "--extra", help="Another requirement to ship, without its dependencies."),
    wheels_from: list[Path] = typer.Option([], "--wheels-from", help="Folder of wheels to use before the index."),
    offline: bool = typer.Option(False, help="Never ask the package index."),
    gpu: bool = typer.Option(True, "--gpu/--no-gpu", help="Run the kernel with a GPU."),
    mount: Optional[str] = typer.Option(None, help="Where the kernel finds the dataset (default /kaggle/input/SLUG)."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for the kernel notebook's parameters."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build the Kaggle dataset (wheels, weights, metadata) and the kernel that installs from it offline."""
    _setup_logging(verbose)
    from .kaggle.bundle import BundleError, build_dataset, build_kernel, kernel_parameters

    try:
        dataset = build_dataset(
            out,
            f"{user}/{dataset_slug}",
            weights=weights,
            with_dali=dali,
            extra=extra,
            wheels_from=wheels_from,
            offline=offline,
        )
        parameters = {**kernel_parameters(dataset, mount), **dict(map(_param, param))}
        kernel_out = kernel_out or out.with_name(out.name + "-kernel")
        meta = build_kernel(kernel_out, f"{user}/{kernel_slug}", dataset.dataset_id, parameters, enable_gpu=gpu)
    except BundleError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    typer.echo(f"dataset {dataset.dataset_id}: {out} ({len(dataset.wheels)} wheels, {size:.1f} MB)")
    typer.echo(f"kernel: {meta.parent} (parameters: {parameters})")
    typer.echo(f"next: kaggle datasets create -p {out}  (or: kaggle datasets version -p {out} -m MESSAGE)")
    typer.echo(f"      kaggle kernels push -p {meta.parent}")


# --- training path: extract, split, train, evaluate -------------------------------------------------


@app.command()
def extract(
    folders: list[Path] = typer.Argument(..., help="DFDC folders (videos + metadata.json), or photo folders with --photos."),
    out: Path = typer.Option(..., "--out", "-o", help="Extraction folder: crops/, parts/, faces.parquet, videos.parquet."),
    config: str = typer.Option("xception", help="Model config whose input size and margin the crops follow."),
    frames: int = typer.Option(17, help="Frames sampled per video."),
    policy: str = typer.Option("even", help="Frame sampling policy."),
    photos: bool = typer.Option(False, help="FOLDERS hold real face photos: one-frame videos, REAL, identity = stem up to '_'."),
    photo_side: int = typer.Option(720, help="Long side, in pixels, photos are resized to before detection."),
    workers: int = typer.Option(2, help="Worker processes (0: in this process)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Run on a Ray cluster at this address ('local' starts one here)."),
    source: Optional[str] = typer.Option(None, help="One source name for all FOLDERS in the tables (`dfd train --source-weights`); videos become FOLDER_VIDEO."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Cut the faces of every video (as inference does) into OUT, resumably; write the metadata table."""
    _setup_logging(verbose)
    from .errors import DFDError
    from .training.dispatch import extract_folders
    from .training.extract import ExtractSettings
    settings = ExtractSettings.for_config(config, frames=frames, policy=policy, photo_side=photo_side)
    try:
        faces, videos = extract_folders(folders, out, settings, photos=photos, workers=workers, ray=ray, source=source)
    except DFDError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    failed = videos[videos["status"] != "ok"]
    typer.echo(f"{len(faces)} faces from {len(videos) - len(failed)} videos in {out / 'faces.parquet'}; {len(failed)} failed")
    for row in failed.itertuples():
        typer.echo(f"  {row.folder}/{row.video}: {row.error}")


@app.command()
def split(
    table: Path = typer.Argument(..., help="faces.parquet (or videos.parquet) from `dfd extract`."),
    val_fraction: float = typer.Option(0.2, help="Share of groups (an original and its fakes) for validation."),
    seed: int = typer.Option(0, help="Seed of the group shuffle."),
    group_pattern: Optional[str] = typer.Option(None, help="Regex: group videos by its first match in the name (e.g. '^[a-z0-9]+' for a shared prefix)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Add `group` and `split` (train/val) columns to TABLE, keeping every fake with its original."""
    _setup_logging(verbose)
    from .training.split import split_file

    out = split_file(table, val_fraction, seed, group_pattern)
    counts = out.groupby("split").agg(rows=("video", "size"), groups=("group", "nunique"))
    typer.echo(counts.to_string())


@app.command("import-crops")
def import_crops(
    labels: Path = typer.Argument(..., help="labels.csv of a crop folder: file,video,label,original[,group] (e.g. the DFDC face crops)."),
    out: Path = typer.Option(..., "--out", "-o", help="The faces table to write (Parquet), split by group."),
    val_fraction: float = typer.Option(0.05, help="Share of groups for validation."),
    seed: int = typer.Option(0, help="Seed of the group shuffle."),
    face_box: str = typer.Option("dfdc", help="Where MTCNN's box lies in these crops: dfdc | ffpp | cx,cy,w,h (crop sides)."),
    reframe: Optional[str] = typer.Option(None, help="Re-cut the crops to this model config's framing (written beside OUT); default: use them whole."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Make a training table of ready-cut face crops (DFDC, FaceForensics++ ...) for `dfd train`."""
    _setup_logging(verbose)
    from .training.crops import import_crops as run_import

    table = run_import(labels, out, val_fraction=val_fraction, seed=seed, face_box=face_box, config=reframe)
    typer.echo(table.groupby(["split", "label"]).size().to_string())


@app.command("score-crops")
def score_crops(
    folder: Path = typer.Argument(..., help="A crop folder with labels.csv (file,video,label): one face per video."),
    out: Path = typer.Option(Path("submission.csv"), "--out", "-o", help="filename,label CSV to write."),
    weights: Optional[str] = typer.Option(None, help="Weights file, or several joined by commas (an ensemble) [default: the bundled default]."),
    face_box: Optional[str] = typer.Option(None, help="Re-cut the crops to the weights' framing around this box: dfdc | ffpp | cx,cy,w,h; default: use them whole."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score ready-cut face crops (e.g. held-out DFDC crops) as inference scores faces; evaluate with `dfd evaluate`."""
    _setup_logging(verbose)
    from .atomic import write_atomic
    from .training.crops import score_crops as run_scoring

    rows = run_scoring(folder, weights, face_box=face_box)
    write_atomic(out, rows.to_csv(index=False).encode())
    typer.echo(f"wrote {len(rows)} rows to {out}")


@app.command()
def train(
    tables: list[Path] = typer.Argument(..., help="Split faces tables (`dfd extract` + `dfd split`, or `dfd import-crops`); several are concatenated."),
    out: Path = typer.Option(..., "--out", "-o", help="Best weights (.weights.h5); its folder's manifest.json is updated."),
    run_dir: Path = typer.Option(Path("runs/train"), help="Backup, state, log.csv, TensorBoard; an unfinished run here resumes."),
    config: str = typer.Option("xception", help="Model config (must match the extraction's crop size and margin)."),
    init: str = typer.Option("none", help="none (random) | imagenet (Lite: from its wheel; Xception: downloaded by Keras) | FILE (.weights.h5 of the same config)."),
    epochs: int = typer.Option(30, help="Most epochs, all stages together."),
    head_epochs: int = typer.Option(0, help="With a pretrained --init: first epochs with the backbone frozen."),
    top_epochs: int = typer.Option(0, help="With a pretrained --init: next epochs with only the top quarter of the backbone unfrozen."),
    head_learning_rate: float = typer.Option(1e-3, help="Peak learning rate while the backbone is frozen."),
    steps_per_epoch: int = typer.Option(200, help="Batches per epoch."),
    batch_size: int = typer.Option(32, help="Crops per batch."),
    learning_rate: float = typer.Option(5e-4, help="Peak learning rate (warm-up, then cosine decay)."),
    warmup_steps: int = typer.Option(100, help="Linear warm-up steps."),
    sbi: str = typer.Option("mix", help="Pseudo-fakes by self-blending: off | mix | only."),
    sbi_fraction: float = typer.Option(0.5, help="With --sbi mix: share of fakes that are self-blended."),
    sbi_lower: float = typer.Option(0.0, help="Share of pseudo-fakes blended over the lower face only (mouth, jaw: reenactment, lip-sync)."),
    source_weights: str = typer.Option("", help="Draw each label per source (table folder): '' in proportion to the rows | equal | dfdc=2,ffpp=1,..."),
    degrade: str = typer.Option("video", help="Augmentation strength: video | c40 (down to FF++ c40 quality: JPEG 15, 25 % resolution, blocking) | h264 (video, with libx264 intra coding at CRF 23-45 in place of most JPEG) | h264c40 (that coding more often, at CRF 32-45, 0.4-2x, half in yuv444p)."),
    patience: int = typer.Option(5, help="Epochs without a better video-level val log loss before stopping."),
    select: str = typer.Option("log_loss", help="Best epoch by video-level val log_loss | calibrated_log_loss (Platt-scaled, class-balanced) | source_log_loss | worst_source_log_loss (mean / largest over sources)."),
    val_augment: bool = typer.Option(False, help="Degrade validation crops like training ones (fixed seeds)."),
    bn_momentum: float = typer.Option(0.9, help="BatchNormalization moving-average momentum."),
    seed: int = typer.Option(0, help="Seed of initialisation, data order, pseudo-fakes and augmentation."),
    data_input: str = typer.Option("tfdata", "--input", help="tfdata (CPU pipeline) | dali (GPU decoding and augmentation; needs --sbi off)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train the classifier on TABLE; keep the epoch with the best video-level validation log loss."""
    _setup_logging(verbose)
    from .training.train import TrainSettings
    from .training.train import train as run_training

    settings = TrainSettings(
        config=config, init=init, epochs=epochs, head_epochs=head_epochs, top_epochs=top_epochs, head_learning_rate=head_learning_rate,
        steps_per_epoch=steps_per_epoch, batch_size=batch_size, learning_rate=learning_rate,
        warmup_steps=warmup_steps, sbi=sbi, sbi_fraction=sbi_fraction, sbi_lower=sbi_lower, source_weights=source_weights, degrade=degrade, patience=patience, select=select, val_augment=val_augment, bn_momentum=bn_momentum,
        seed=seed, input=data_input,
    )  # fmt: skip
    state = run_training(tables, out, run_dir, settings, command=_command_line())
    typer.echo(f"best epoch {state['best_epoch']}: {state['metrics']}; weights: {out}")


@app.command()
def calibrate(
    weights: str = typer.Argument(..., help="Trained .weights.h5 (in a folder with its manifest.json); several joined by commas: an ensemble of calibrated members."),
    table: list[Path] = typer.Option([], "--table", help="Training tables whose `val` rows fit the calibration, or an ensemble's member weights (repeat for several)."),
    videos: Optional[Path] = typer.Option(None, help="Labelled validation videos (DFDC folder) to choose the frame count and rule on (an ensemble: also how it combines)."),
    balance: str = typer.Option("label", help="label: the two classes weigh alike | source: every (source, label) cell weighs alike."),
    device: str = typer.Option("auto", help="auto | cpu | cuda (for --videos)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Fit Platt scaling (and flip TTA) on validation crops, then the frame count and rule on validation videos.

    With several weights (A,B): choose how the calibrated members combine, then frames and rule, on --videos.
    """
    _setup_logging(verbose)
    from .training.calibrate import calibrate_ensemble, calibrate_weights, choose_inference

    if "," in weights:
        if videos is None:
            raise typer.BadParameter("an ensemble is chosen on labelled validation videos: pass --videos", param_hint="--videos")
        entry = calibrate_ensemble(weights, videos, tables=table, device=device)
        typer.echo(_records_table(entry["validation"]["table"]))
        typer.echo(f"ensemble: {entry['combine']}, member weights {entry['member_weights']}, "
                   f"frames={entry['inference']['frames']} rule={entry['inference']['rule']}")  # fmt: skip
        return
    if not table:
        raise typer.BadParameter("calibration is fitted on the validation rows of training tables: pass --table", param_hint="--table")
    fit = calibrate_weights(weights, table, balance=balance)
    typer.echo(f"calibration: a={fit['a']:.3f} b={fit['b']:.3f} flip={fit['flip']}; balanced log loss "
               f"{fit['balanced_log_loss_before']:.4f} -> {fit['balanced_log_loss']:.4f}")  # fmt: skip
    if videos is not None:
        chosen = choose_inference(weights, videos, device=device)
        typer.echo(_records_table(chosen["validation"]["table"]))
        typer.echo(f"inference: frames={chosen['frames']} rule={chosen['rule']} flip={chosen['flip']}")


@app.command()
def soup(
    weights: list[str] = typer.Argument(..., help="Two or more .weights.h5 files of one model config, fine-tuned from one ancestor."),
    out: Path = typer.Option(..., "--out", "-o", help="The averaged .weights.h5; its folder's manifest.json gets the entry."),
    shares: str = typer.Option("", help="Share of each file in the average, e.g. 0.3,0.7 (normalised); '': equal shares."),
    config: Optional[str] = typer.Option(None, help="Model config, for files outside a manifest."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Average the weights of several files into one model (a model soup: one model's cost); calibrate it next."""
    _setup_logging(verbose)
    from .errors import DFDError
    from .models.soup import soup as make_soup

    try:
        split = [float(s) for s in shares.split(",")] if shares else None
        path = make_soup(weights, out, split, config=config, command=_command_line())
    except (DFDError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(f"wrote {path}; next: dfd calibrate {path} --table ... (the ingredients' calibrations do not carry over)")


def _records_table(records: list[dict]) -> str:
    import pandas as pd

    return pd.DataFrame(records).to_string(index=False)


@app.command()
def evaluate(
    submission: Path = typer.Argument(..., help="submission.csv (filename,label with label = P(FAKE))."),
    metadata: Path = typer.Argument(..., help="DFDC metadata.json with the true labels."),
    plot: Optional[Path] = typer.Option(None, help="PNG with the ROC curve and score histograms (default: SUBMISSION with .png)."),
    per_video: bool = typer.Option(False, "--per-video", help="Also print every video's score and label."),
    by: Optional[str] = typer.Option(None, help="Regex: also print metrics per source, by its first match in the file names (e.g. '^[a-z]+40(_[a-z]+)?')."),
    report: Optional[Path] = typer.Option(None, help="Add the metrics, the plot and the worst-scored videos to this `dfd predict --report` report."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Log loss, ROC AUC and accuracy of SUBMISSION against METADATA, beside the constant-prior baseline."""
    _setup_logging(verbose)
    from .errors import DFDError
    from .training.evaluate import evaluate as run_evaluation

    plot = plot or submission.with_suffix(".png")
    try:
        result, table = run_evaluation(submission, metadata, plot)
        if report is not None:
            from .inference.report import add_evaluation

            add_evaluation(report, result, table, plot)
    except DFDError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(result.report())
    if by is not None:
        from .training.evaluate import by_source

        typer.echo(by_source(table, by).round(4).to_string())
    if per_video:
        typer.echo(table.assign(label=table["y"].map({0: "REAL", 1: "FAKE"})).drop(columns="y").to_string(index=False))
    typer.echo(f"plot: {plot}")
    if report is not None:
        typer.echo(f"report: {report} (evaluation section added)")

