"""The `salesforecast` command line: one sub-command per pipeline stage."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from salesforecast.config import Profile, Settings
from salesforecast.errors import SalesForecastError

app = typer.Typer(help="Weekly sales forecasts for every store and department.", no_args_is_help=True)
data_app = typer.Typer(help="Read, validate and generate data in the Kaggle schema.", no_args_is_help=True)
features_app = typer.Typer(help="Feature engineering and the offline store.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")

console = Console()
err_console = Console(stderr=True)


ProfileOpt = Annotated[
    Profile | None,
    typer.Option("--profile", help="local (Parquet, SQLite) or postgres. Env: SALESFORECAST_PROFILE."),
]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option("--workdir", help="Where artefacts go. Env: SALESFORECAST_WORKDIR."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder with train, features, stores (.csv, .csv.gz or .zip)."),
]

TrackOpt = Annotated[
    bool,
    typer.Option(
        "--track/--no-track",
        help="Log the stage to MLflow (SALESFORECAST_MLFLOW_URI; default <workdir>/mlflow.db; off: none).",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Show a user error as one line and exit 2; a traceback is for bugs only."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SalesForecastError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except OSError as exc:  # a path the user gave: missing, not a folder, not writable
            if exc.filename is None:
                raise
            paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
            err_console.print(f"[bold red]error:[/] {paths}: {exc.strerror}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def make_settings(
    profile: Profile | None = None, workdir: Path | None = None, data_dir: Path | None = None
) -> Settings:
    """Command-line values win over environment variables, which win over defaults."""
    from pydantic import ValidationError

    overrides = {"profile": profile, "workdir": workdir, "data_dir": data_dir}
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:  # a bad SALESFORECAST_* variable: name it, no traceback
        problems = "; ".join(
            f"SALESFORECAST_{'_'.join(str(p) for p in e['loc']).upper()}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise SalesForecastError(f"invalid setting: {problems}") from None


def _require_data_dir(settings: Settings) -> Path:
    from salesforecast.pipeline import require_data_dir

    return require_data_dir(settings)


@data_app.command("validate")
@friendly_errors
def data_validate(
    data_dir: DataDirOpt = None, profile: ProfileOpt = None, workdir: WorkdirOpt = None
) -> None:
    """Check the Kaggle files and print a summary."""
    from salesforecast.data.ingest import load, summarize

    settings = make_settings(profile, workdir, data_dir)
    raw = load(_require_data_dir(settings))
    table = Table(title=f"Data in {settings.data_dir}", show_header=False)
    for key, value in summarize(raw).items():
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int | float) else str(value))
    console.print(table)
    console.print("[green]valid[/]: " + ", ".join(raw.sources.values()), highlight=False)


@data_app.command("synth")
@friendly_errors
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the CSV files to.")],
    stores: Annotated[int, typer.Option(min=1, max=999)] = 5,
    depts: Annotated[int, typer.Option(min=1, max=99)] = 10,
    weeks: Annotated[int, typer.Option(min=8, max=520)] = 143,
    seed: int = 0,
) -> None:
    """Write a deterministic synthetic data set in the Kaggle schema."""
    from salesforecast.data import synth

    paths = synth.write(out, synth.generate(stores=stores, depts=depts, weeks=weeks, seed=seed))
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}", highlight=False)


@data_app.command("slice")
@friendly_errors
def data_slice(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the sliced CSV files to.")],
    stores: Annotated[str, typer.Option(help="Comma-separated store numbers to keep, e.g. 1,2,3.")] = "1,2,3",
    data_dir: DataDirOpt = None,
) -> None:
    """Keep a few stores of a Kaggle data directory (a fast real-data sample; stays on your disk)."""
    from salesforecast.data.slice import write_slice

    settings = make_settings(data_dir=data_dir)
    try:
        keep = [int(s) for s in stores.split(",") if s.strip()]
    except ValueError:
        raise SalesForecastError(f"--stores {stores!r}: expected store numbers separated by commas") from None
    paths = write_slice(_require_data_dir(settings), out, keep)
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}", highlight=False)


@features_app.command("build")
@friendly_errors
def features_build(
    data_dir: DataDirOpt = None, profile: ProfileOpt = None, workdir: WorkdirOpt = None
) -> None:
    """Validate the data, build `sales_features` and `store_features`, load the offline store."""
    from salesforecast.data.ingest import load
    from salesforecast.features.build import build
    from salesforecast.offline.store import write_feature_tables

    settings = make_settings(profile, workdir, data_dir)
    started = time.perf_counter()
    raw = load(_require_data_dir(settings))
    tables = build(raw)
    manifest = write_feature_tables(settings, tables, raw.sources)
    table = Table(title=f"Feature tables ({settings.profile.value} profile)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in manifest["rows"].items():  # type: ignore[union-attr]
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(
        f"{manifest['observed_sales_rows']:,} observed sales rows; written to "
        f"{manifest['location']} in {time.perf_counter() - started:.1f} s",
        highlight=False,
    )


OfflineStoreOpt = Annotated[
    str | None,
    typer.Option(
        "--offline-store", help="duckdb or postgres (default: duckdb for local, postgres for postgres)."
    ),
]
ComputeOpt = Annotated[
    str, typer.Option("--compute", help="Materialization engine: local or ray (Feast's Ray engine).")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address", envvar="RAY_ADDRESS", help="Ray cluster to use; default: start a local Ray."
    ),
]
RayCpusOpt = Annotated[
    int, typer.Option("--ray-cpus", help="CPUs of the local Ray (ignored with --ray-address).")
]


@features_app.command("apply")
@friendly_errors
def features_apply(
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    offline_store: OfflineStoreOpt = None,
    compute: ComputeOpt = "local",
    ray_address: RayAddressOpt = None,
    ray_cpus: RayCpusOpt = 2,
) -> None:
    """Generate the Feast repository for the profile and register it (the equivalent of `feast apply`)."""
    from salesforecast.featurestore.config import parse_options
    from salesforecast.featurestore.store import apply, open_repo

    settings = make_settings(profile, workdir)
    summary = apply(open_repo(settings, parse_options(offline_store, compute, ray_address, ray_cpus)))
    console.print(
        f"applied {len(summary['applied'])} objects to project salesforecast in {summary['seconds']} s; "  # type: ignore[arg-type]
        f"repository: {summary['repo']} (run `feast` commands there)",
        highlight=False,
    )


@features_app.command("training-set")
@friendly_errors
def features_training_set(
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    offline_store: OfflineStoreOpt = None,
    sample_size: Annotated[
        int | None, typer.Option("--sample-size", min=1, help="About this many rows, as whole series.")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="First week (YYYY-MM-DD, inclusive).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last week (YYYY-MM-DD, inclusive).")] = None,
    observed_only: Annotated[bool, typer.Option("--observed-only", help="Skip weeks without sales.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the frame to this Parquet file.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.")] = False,
) -> None:
    """Build the point-in-time correct training frame of the demand_forecasting feature service."""
    from salesforecast.featurestore.config import parse_options
    from salesforecast.featurestore.training_set import build_training_set, write_parquet

    settings = make_settings(profile, workdir)
    started = time.perf_counter()
    frame = build_training_set(
        settings,
        sample_size=sample_size,
        start=start,
        end=end,
        observed_only=observed_only,
        options=parse_options(offline_store),
        use_cache=not no_cache,
    )
    where = ""
    if out is not None:
        write_parquet(frame, out)
        where = f"; written to {out}"
    series = frame.groupby(["store", "dept"]).ngroups
    console.print(
        f"{len(frame):,} rows x {frame.shape[1]} columns, {series:,} series, "
        f"{frame['date'].min():%Y-%m-%d}..{frame['date'].max():%Y-%m-%d} in "
        f"{time.perf_counter() - started:.1f} s{where}",
        highlight=False,
    )


@app.command("train")
@friendly_errors
def train(
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes (torchrun).")] = 1,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    sample_size: Annotated[int | None, typer.Option(min=1, help="Rows to train on (whole series).")] = None,
    windows_per_epoch: Annotated[int, typer.Option(min=0, help="Windows drawn per epoch; 0 = all.")] = 24_576,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")] = False,
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="bf16/fp16 mixed precision.")] = True,
    threads: Annotated[int, typer.Option(min=1, help="Threads per worker (OMP_NUM_THREADS).")] = 1,
    cutoff: Annotated[str, typer.Option(help="Use only data dated before this.")] = "2012-02-03",
    val_weeks: Annotated[int, typer.Option(min=1, help="Validation weeks just before the cut-off.")] = 13,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-3,
    patience: Annotated[int, typer.Option(min=1, help="Epochs without improvement before stopping.")] = 4,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit/--no-refit",
            help="After early stopping picks E epochs, train again on every week before the cut-off "
            "(the validation weeks too) for E epochs, and keep that model.",
        ),
    ] = False,
    ensemble: Annotated[
        int,
        typer.Option(
            min=1,
            help="Train K members (seeds seed..seed+K-1) and forecast their mean: steadier and more "
            "accurate, K times the training and inference time.",
        ),
    ] = 1,
    covariates: Annotated[
        str,
        typer.Option(
            help="Store-week covariates the model reads: none (default: they trend or start late, "
            "see docs/model.md), all, or a comma-separated list of temperature, fuel_price, cpi, "
            "unemployment, markdown1..5, total_markdown, has_markdown, holiday_markdown.",
        ),
    ] = "none",
    baseline: Annotated[
        str,
        typer.Option(
            help="none: the TFT forecasts the quantiles; seasonal_naive: it forecasts offsets from "
            "the seasonal-naive forecast (sales 52 weeks earlier, else the last week), see "
            "docs/model.md.",
        ),
    ] = "none",
    holiday_weight: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Weight of holiday weeks in the training loss (5: as in the WMAE; 1, the default: "
            "every week alike).",
        ),
    ] = 1.0,
    season_window: Annotated[
        int,
        typer.Option(
            min=0,
            max=25,
            help="k > 0: sales of last year's weeks 52 +- 1..k earlier are inputs too, beside the "
            "week 52 earlier (off by default, see docs/model.md).",
        ),
    ] = 0,
    encoder_length: Annotated[int | None, typer.Option(min=1)] = None,
    horizon: Annotated[int | None, typer.Option(min=1, max=39)] = None,
    seed: int | None = None,
    track: TrackOpt = True,
) -> None:
    """Train the TFT with DDP on the Feast training set; artefacts go to <workdir>/artifacts."""
    import pandas as pd

    from salesforecast import tracking
    from salesforecast.model.windows import covariate_columns
    from salesforecast.training.launch import launch
    from salesforecast.training.train import TrainConfig, check_baseline

    try:
        pd.Timestamp(cutoff)
    except ValueError:
        raise SalesForecastError(f"--cutoff {cutoff!r}: not a date (expected YYYY-MM-DD)") from None
    covariate_columns(covariates)  # a typo fails here, not in every worker
    check_baseline(baseline)
    config = TrainConfig(
        profile=profile.value if profile else None,
        workdir=str(workdir) if workdir else None,
        cutoff=cutoff,
        val_weeks=val_weeks,
        sample_size=sample_size,
        epochs=epochs,
        windows_per_epoch=windows_per_epoch or None,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        refit=refit,
        ensemble=ensemble,
        covariates=covariates,
        baseline=baseline,
        holiday_weight=holiday_weight,
        season_window=season_window,
        encoder_length=encoder_length,
        horizon=horizon,
        amp=amp,
        threads=threads,
        seed=seed,
        resume=resume,
    )
    launch(config, workers)
    tracked = tracking.log_training(make_settings(profile, workdir), track)
    console.print(tracked.line(), highlight=False, soft_wrap=True)


k8s_app = typer.Typer(help="Run on Kubernetes: Kubeflow training, KubeRay, PostgreSQL.", no_args_is_help=True)
app.add_typer(k8s_app, name="k8s")


def _cluster_config(namespace: str, image: str, workers: int, gpus: int, epochs: int) -> object:
    from salesforecast.deploy.manifests import ClusterConfig

    return ClusterConfig(namespace=namespace, image=image, workers=workers, gpus=gpus, epochs=epochs)


NamespaceOpt = Annotated[str, typer.Option(help="Kubernetes namespace.")]
ImageOpt = Annotated[str, typer.Option(help="Container image built from ./Containerfile.")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Training pods (one master, the rest workers).")]
GpusOpt = Annotated[int, typer.Option(min=0, help="GPUs per training pod (0: CPU).")]
EpochsOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Training epochs of the cluster job (20, as `salesforecast train`).",
    ),
]


@k8s_app.command("render")
@friendly_errors
def k8s_render(
    out: Annotated[Path, typer.Option("--out", help="Folder for the YAML files.")],
    namespace: NamespaceOpt = "salesforecast",
    image: ImageOpt = "salesforecast:0.1.0",
    workers: WorkersOpt = 2,
    gpus: GpusOpt = 0,
    epochs: EpochsOpt = 20,
) -> None:
    """Write the manifests: PostgreSQL, Feast config, data prep, PyTorchJob/TrainJob, RayCluster, API."""
    from salesforecast.deploy.feature_store import cluster_feature_store_configs
    from salesforecast.deploy.render import render

    cfg = _cluster_config(namespace, image, workers, gpus, epochs)
    paths = render(cfg, out, cluster_feature_store_configs(cfg))  # type: ignore[arg-type]
    for path in paths:
        console.print(f"wrote {path}", highlight=False)
    console.print(f"apply with: kubectl apply -f {out}", highlight=False)


@k8s_app.command("submit")
@friendly_errors
def k8s_submit(
    api: Annotated[
        str, typer.Option(help="pytorchjob (Training Operator) or trainjob (Trainer v2).")
    ] = "pytorchjob",
    namespace: NamespaceOpt = "salesforecast",
    image: ImageOpt = "salesforecast:0.1.0",
    workers: WorkersOpt = 2,
    gpus: GpusOpt = 0,
    epochs: EpochsOpt = 20,
    follow: Annotated[bool, typer.Option(help="Stream the training log.")] = True,
) -> None:
    """Create the training job through the Kubeflow SDK and follow its log."""
    from salesforecast.deploy import submit

    cfg = _cluster_config(namespace, image, workers, gpus, epochs)
    if api not in {"pytorchjob", "trainjob"}:
        raise SalesForecastError(f"--api {api!r}: expected pytorchjob or trainjob")
    run = submit.submit_pytorchjob if api == "pytorchjob" else submit.submit_trainjob
    run(cfg, lambda line: console.print(line, highlight=False, markup=False), follow)  # type: ignore[arg-type]


@app.command("run")
@friendly_errors
def run_command(
    data_dir: DataDirOpt = None,
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="Training worker processes (DDP).")] = 2,
    quick: Annotated[
        bool, typer.Option("--quick", help="The quickstart: 100,000-row sample, 3 epochs.")
    ] = False,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs (default: the trainer's).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run every stage, even if up to date.")] = False,
    track: TrackOpt = True,
) -> None:
    """Run every stage end to end (validate .. forecast); a re-run resumes at the first changed stage."""
    import json

    from salesforecast import pipeline
    from salesforecast.stages import StageRunner

    settings = make_settings(profile, workdir, data_dir)
    if settings.data_dir is None:
        settings = settings.model_copy(update={"data_dir": pipeline.demo_data(settings)})
        console.rule("[bold yellow]No --data-dir: running on SYNTHETIC data in the Kaggle schema[/]")
        console.print(
            f"[yellow]{settings.data_dir} was generated by `salesforecast data synth`; pass --data-dir with "
            "the Kaggle files for real forecasts.[/]",
            highlight=False,
        )

    def show(stage: str, value: object) -> None:
        if stage == "evaluate":
            print_evaluation(value)
        elif stage == "forecast":
            frame = value  # type: ignore[assignment]
            table = Table(title=f"Forecasts from the online store (model {frame['model_version'].iloc[0]})")
            for column in ("store", "dept", "h", "week", "P10", "P50", "P90"):
                table.add_column(column, justify="right")
            for row in frame.itertuples():
                table.add_row(
                    str(row.store), str(row.dept), str(row.h), f"{row.date:%Y-%m-%d}",
                    *(f"{v:,.0f}" for v in (row.p10, row.p50, row.p90)),
                )  # fmt: skip
            console.print(table)
        elif stage == "tracking":
            console.print(value.line(), highlight=False)  # type: ignore[attr-defined]

    plan = pipeline.stages(settings, workers=workers, quick=quick, epochs=epochs, show=show, track=track)
    position = {stage.name: i for i, stage in enumerate(plan, start=1)}

    def announce(stage: object, skipped: bool) -> None:
        label = f"[{position[stage.name]}/{len(plan)}] {stage.title}"  # type: ignore[attr-defined]
        console.rule(f"{label} [dim](up to date, skipped)[/]" if skipped else label)

    results = StageRunner(settings.workdir / "stages", force=force).run(plan, on_start=announce)

    table = Table(title="salesforecast run")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    for result in results:
        table.add_row(result.title, "skipped" if result.skipped else "done", f"{result.seconds:.1f}")
    table.add_row("total", "", f"{sum(r.seconds for r in results):.1f}")
    console.print(table)
    metrics_path = settings.reports_dir / "metrics.json"
    if metrics_path.is_file():
        holdout = json.loads(metrics_path.read_text())["protocols"].get("holdout", {})
        scores = holdout_scores(holdout)
        console.print(scores)
    console.print(
        f"artefacts: {settings.artifacts_dir}\nreport: {settings.reports_dir / 'report.md'}\n"
        f"stage records: {settings.workdir / 'stages'}",
        highlight=False,
    )


def holdout_scores(holdout: dict) -> Table:
    """The holdout block of `reports/metrics.json` as the table `run` ends with."""
    period = holdout.get("test_period", {})
    synthetic = holdout.get("data", {}).get("synthetic", False)
    scores = Table(
        title=f"Test metrics, holdout {period.get('start')}..{period.get('end')} (never trained on)"
        + (" on SYNTHETIC data: they say nothing about real sales" if synthetic else "")
    )
    for column in ("model", "WMAE", "WMAE h=1", "WAPE", "P10-P90 cover"):
        scores.add_column(column, justify="right" if column != "model" else "left")
    for name, entry in holdout.get("models", {}).items():
        pooled = entry["pooled"]
        cover = pooled.get("coverage_p10_p90")
        scores.add_row(
            name,
            f"{pooled['wmae']:,.1f}",
            f"{entry['per_horizon']['1']['wmae']:,.1f}",
            f"{100 * pooled['wape']:.1f}%",
            "-" if cover is None else f"{100 * cover:.1f}%",
        )
    return scores


@app.command("evaluate")
@friendly_errors
def evaluate(
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="holdout (every week 2012-02-03..2012-10-26 an origin) or backtest (the course's "
            "10 two-month folds, Mar 2011..Oct 2012).",
        ),
    ] = "holdout",
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon", min=1, max=39, help="Holdout: weeks forecast from each origin (default 8)."
        ),
    ] = None,
    retrain_every: Annotated[
        int | None,
        typer.Option(
            "--retrain-every",
            min=1,
            help="Retrain a trained model every K origins (backtest default: every fold; holdout "
            "default: trained once before the test period). Baselines refit at every origin.",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    track: TrackOpt = True,
    fp32: Annotated[
        bool,
        typer.Option(
            "--fp32",
            help="Run the TFT in float32 (default: the autocast dtype it was trained with, bf16 on "
            "CPUs that have it; scores move by about 0.1%).",
        ),
    ] = False,
) -> None:
    """Score the baselines, and a trained model when there is one, on one protocol; write the report."""
    from salesforecast import pipeline, tracking
    from salesforecast.evaluation import report

    settings = make_settings(profile, workdir, data_dir)
    if fp32:
        settings = settings.model_copy(update={"tft_precision": "fp32"})
    run = pipeline.evaluate(
        settings, protocol, horizon, retrain_every, progress=lambda line: console.print(line, highlight=False)
    )
    for note in run.notes:
        console.print(f"[yellow]{note}[/]", highlight=False)
    print_evaluation(run)
    console.print(
        f"wrote {run.paths[0]}, {run.paths[1]} and {settings.reports_dir / report.REPORT_FILE} "
        f"in {run.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    tracked = tracking.log_evaluation(settings, run.result.protocol.name, track)
    console.print(tracked.line(), highlight=False, soft_wrap=True)


def print_evaluation(run: object) -> None:
    """The models-against-metrics table of an evaluation (also the summary of `run`)."""
    result = run.result  # type: ignore[attr-defined]
    plan = result.protocol
    period = plan.describe()["test_period"]
    table = Table(title=f"{plan.name} {period['start']}..{period['end']}, score = {plan.score_name}")
    table.add_column("model", no_wrap=True)
    for column in ("score", "WMAE h=1", "WAPE", "MAPE*", "P10-P90", "imputed"):
        table.add_column(column, justify="right")
    for name, entry in result.summary().items():
        pooled, cover = entry["pooled"], entry["pooled"]["coverage_p10_p90"]
        table.add_row(
            name,
            f"{entry['score']:,.1f}",
            f"{entry['per_horizon']['1']['wmae']:,.1f}",
            f"{100 * pooled['wape']:.1f}%",
            f"{100 * pooled['mape']:.1f}%",
            "-" if cover is None else f"{100 * cover:.1f}%",
            f"{entry['imputed_rows']:,}",
        )
    console.print(table)
    console.print("* MAPE over rows with |actual| >= $1,000 only", highlight=False)


@app.command("report")
@friendly_errors
def report_command(
    open_report: Annotated[
        bool, typer.Option("--open", help="Also open report.md in a browser when a display is available.")
    ] = False,
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
) -> None:
    """Redraw report.md and the charts from the last evaluation and print where every file is."""
    import os
    import webbrowser

    from salesforecast.evaluation import report

    settings = make_settings(profile, workdir)
    reports_dir = settings.reports_dir
    if not (reports_dir / report.METRICS_FILE).is_file():
        raise SalesForecastError(f"no evaluation in {reports_dir}: run `salesforecast evaluate` first")
    report.render(reports_dir)
    files = sorted(p for p in reports_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in files:
        console.print(str(path.resolve()), highlight=False, soft_wrap=True)
    uri = (reports_dir / report.REPORT_FILE).resolve().as_uri()
    if open_report:
        has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        if not (has_display and webbrowser.open(uri)):
            console.print(f"no display to open it on; the report is {uri}", highlight=False, soft_wrap=True)


OnlineStoreOpt = Annotated[
    str | None,
    typer.Option(
        "--online-store",
        help="sqlite, postgres or redis (SALESFORECAST_REDIS, default 127.0.0.1:6379); remembered for "
        "later commands. Default: sqlite for local, postgres for postgres.",
    ),
]


@app.command("materialize")
@friendly_errors
def materialize_command(
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    online_store: OnlineStoreOpt = None,
    offline_store: OfflineStoreOpt = None,
    compute: ComputeOpt = "local",
    ray_address: RayAddressOpt = None,
    ray_cpus: RayCpusOpt = 2,
    end: Annotated[
        str | None, typer.Option("--end", help="Latest week to load (default: the last week with sales).")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Reload every key, not only new weeks.")] = False,
) -> None:
    """Load the latest features of every series and store into the online store (incremental)."""
    import pandas as pd

    from salesforecast.featurestore.config import parse_options
    from salesforecast.featurestore.materialize import materialize

    settings = make_settings(profile, workdir)
    try:
        end_at = pd.Timestamp(end, tz="UTC").to_pydatetime() if end else None
    except ValueError:
        raise SalesForecastError(f"--end {end!r} is not a date (expected YYYY-MM-DD)") from None
    options = parse_options(offline_store, compute, ray_address, ray_cpus, online_store)
    summary = materialize(settings, end=end_at, options=options, full=full)
    rows = ", ".join(f"{view} {n:,}" for view, n in summary["rows"].items())  # type: ignore[attr-defined]
    console.print(
        f"{'full' if summary['full'] else 'incremental'} materialization into the {summary['online_store']} "
        f"online store up to {summary['end']}: {summary['rows_written']:,} rows written ({rows}) in "
        f"{summary['seconds']} s",
        highlight=False,
    )


HorizonOpt = Annotated[
    int | None, typer.Option("--horizon", min=1, max=39, help="Weeks ahead (default: the model's horizon).")
]


def _forecaster(profile: Profile | None, workdir: Path | None, online_store: str | None) -> Any:
    from salesforecast.featurestore.config import parse_options
    from salesforecast.serving.predict import Forecaster

    settings = make_settings(profile, workdir)
    return settings, Forecaster(settings, parse_options(online_store=online_store))


@app.command("predict")
@friendly_errors
def predict_command(
    store: Annotated[int, typer.Option("--store", min=1, help="Store number.")],
    dept: Annotated[int, typer.Option("--dept", min=1, help="Department number.")],
    horizon: HorizonOpt = None,
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    online_store: OnlineStoreOpt = None,
) -> None:
    """Forecast one series from the online store and print P10/P50/P90 per week."""
    from salesforecast.errors import UnknownSeriesError
    from salesforecast.serving.batch import series_keys

    settings, forecaster = _forecaster(profile, workdir, online_store)
    try:
        frame = forecaster.forecast_frame([(store, dept)], horizon)
    except UnknownSeriesError as exc:  # say which series do exist (the synthetic demo has other keys)
        every = series_keys(settings)
        known = [k for k in every if k[0] == store][:5] or every[:5]
        examples = ", ".join(f"--store {s} --dept {d}" for s, d in known)
        raise SalesForecastError(f"{exc}; series that exist: {examples}") from None
    table = Table(title=f"store {store} dept {dept}: weekly sales forecast")
    for column in ("h", "week", "P10", "P50", "P90"):
        table.add_column(column, justify="right")
    for row in frame.itertuples():
        values = (f"{v:,.2f}" for v in (row.p10, row.p50, row.p90))
        table.add_row(str(row.h), f"{row.date:%Y-%m-%d}", *values)
    console.print(table)
    console.print(
        f"model {forecaster.model_version}; features as of {frame['feature_timestamp'].iloc[0]:%Y-%m-%d}",
        highlight=False,
    )


@app.command("forecast")
@friendly_errors
def forecast_command(
    out: Annotated[Path, typer.Option("--out", help="FILE.parquet or FILE.csv")],
    all_series: Annotated[bool, typer.Option("--all", help="Every series of the offline store.")] = False,
    horizon: HorizonOpt = None,
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    online_store: OnlineStoreOpt = None,
) -> None:
    """Score every series in batches through the online store and write the forecasts."""
    from salesforecast.serving.batch import forecast_all, write_forecasts

    if not all_series:
        raise SalesForecastError("pass --all (every series); for one series use `salesforecast predict`")
    settings, forecaster = _forecaster(profile, workdir, online_store)
    frame, seconds = forecast_all(settings, forecaster, horizon)
    write_forecasts(frame, out)
    console.print(
        f"{frame.groupby(['store', 'dept']).ngroups:,} series x {frame['h'].max()} weeks scored in "
        f"{seconds:.2f} s; written to {out}",
        highlight=False,
    )


@app.command("serve")
@friendly_errors
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    profile: ProfileOpt = None,
    workdir: WorkdirOpt = None,
    online_store: OnlineStoreOpt = None,
) -> None:
    """Serve the forecasting API (FastAPI on uvicorn); docs at /docs."""
    import uvicorn

    from salesforecast.serving.app import create_app

    _, forecaster = _forecaster(profile, workdir, online_store)
    uvicorn.run(create_app(forecaster), host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()
