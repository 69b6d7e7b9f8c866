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

    return wrapper  # type: ignore[return-value]


def make_settings(
    profile: Profile | None = None, workdir: Path | None = None, data_dir: Path | None = None
) -> Settings:
    """Command-line values win over environment variables, which win over defaults."""
    overrides = {"profile": profile, "workdir": workdir, "data_dir": data_dir}
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _require_data_dir(settings: Settings) -> Path:
    if settings.data_dir is None:
        raise SalesForecastError(
            "no data directory: pass --data-dir DIR (or set SALESFORECAST_DATA_DIR); "
            "`salesforecast data synth --out DIR` writes a synthetic one"
        )
    return settings.data_dir


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


k8s_app = typer.Typer(help="Run on Kubernetes: Kubeflow training, KubeRay, PostgreSQL.", no_args_is_help=True)
app.add_typer(k8s_app, name="k8s")


def _cluster_config(namespace: str, image: str, workers: int, gpus: int, epochs: int) -> object:
    from salesforecast.deploy.manifests import ClusterConfig

    return ClusterConfig(namespace=namespace, image=image, workers=workers, gpus=gpus, epochs=epochs)


NamespaceOpt = Annotated[str, typer.Option(help="Kubernetes namespace.")]
ImageOpt = Annotated[str, typer.Option(help="Container image built from ./Containerfile.")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="Training pods (one master, the rest workers).")]
GpusOpt = Annotated[int, typer.Option(min=0, help="GPUs per training pod (0: CPU).")]
EpochsOpt = Annotated[int, typer.Option(min=1, help="Training epochs.")]


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


if __name__ == "__main__":
    app()
