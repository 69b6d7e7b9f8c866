"""Evaluation artefacts: forecasts (Parquet), metrics.json, report.md and PNG charts.

`write` stores one protocol's results (metrics.json keeps every protocol run so far, keyed by
name); `render` redraws report.md and the charts from those files alone, so `salesforecast
report` needs no re-evaluation. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from salesforecast import __version__
from salesforecast.evaluation import metrics
from salesforecast.evaluation.harness import Evaluation
from salesforecast.offline.files import atomic_write, write_json

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
FORECAST_COLUMNS = [
    "model",
    "store",
    "dept",
    "fold",
    "origin_date",
    "target_date",
    "h",
    "p50",
    "p10",
    "p90",
    "actual",
    "is_holiday",
    "imputed",
]
TYPICAL_QUANTILES = (0.25, 0.5, 0.75)


def forecasts_path(reports_dir: Path, protocol: str) -> Path:
    return reports_dir / f"forecasts_{protocol}.parquet"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_version(sources: Mapping[str, str], train: pd.DataFrame) -> dict[str, Any]:
    """What was evaluated: input files with their SHA-256, and the size of the sales data."""
    from salesforecast.data.synth import MARKER

    files = {}
    for name, label in sources.items():
        path = Path(label.split("!")[0])
        files[name] = {"path": label, "sha256": file_digest(path) if path.is_file() else None}
    folders = {Path(label.split("!")[0]).parent for label in sources.values()}
    return {
        "synthetic": any((folder / MARKER).is_file() for folder in folders),
        "files": files,
        "rows": len(train),
        "series": int(train[["store", "dept"]].drop_duplicates().shape[0]),
        "first_week": str(pd.Timestamp(train["date"].min()).date()),
        "last_week": str(pd.Timestamp(train["date"].max()).date()),
    }


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"protocols": {}}
    return payload if isinstance(payload.get("protocols"), dict) else {"protocols": {}}


def write(evaluation: Evaluation, reports_dir: Path, data: Mapping[str, Any]) -> list[Path]:
    """Store one protocol's forecasts and metrics, then redraw the whole report."""
    protocol = evaluation.protocol
    frame = evaluation.forecasts.reindex(columns=FORECAST_COLUMNS).sort_values(
        ["model", "origin_date", "h", "store", "dept"], kind="stable", ignore_index=True
    )
    frame = frame.astype({"store": "int32", "dept": "int32", "fold": "int32", "h": "int32"})
    parquet = atomic_write(
        forecasts_path(reports_dir, protocol.name), lambda tmp: frame.to_parquet(tmp, index=False)
    )
    path = reports_dir / METRICS_FILE
    payload = _read_metrics(path)
    payload["generated_by"] = f"salesforecast {__version__}"
    payload["protocols"][protocol.name] = protocol.describe() | {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "retrain_every": evaluation.retrain_every,
        "mape_note": f"MAPE is over rows with |actual| >= ${metrics.MAPE_MIN_ACTUAL:,.0f} only",
        "imputation_note": "a target row a model did not forecast is scored as a forecast of 0",
        "data": dict(data),
        "notes": list(evaluation.notes),
        "models": evaluation.summary(),
    }
    write_json(path, payload)
    return [parquet, path, *render(reports_dir)]


# ----------------------------------------------------------------------------- charts


def _save(fig: plt.Figure, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_wmae_by_horizon(models: Mapping[str, Mapping[str, Any]], title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, entry in models.items():
        steps = sorted(entry["per_horizon"], key=int)
        ax.plot(
            [int(h) for h in steps], [entry["per_horizon"][h]["wmae"] for h in steps], marker="o", label=name
        )
    ax.set(xlabel="horizon step h (weeks ahead; h = 1 is the origin week)", ylabel="WMAE ($)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def pick_series(frame: pd.DataFrame) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The largest series by test-period sales, and typical ones at its quartiles (always present)."""
    one = frame[frame["model"] == frame["model"].iloc[0]].drop_duplicates(["store", "dept", "target_date"])
    weeks = one["target_date"].nunique()
    per = one.groupby(["store", "dept"]).agg(total=("actual", "sum"), weeks=("actual", "size"))
    largest = per["total"].idxmax()
    full = per[per["weeks"] == weeks].sort_values("total", kind="stable")
    full = full if len(full) else per.sort_values("total", kind="stable")
    picks = [full.index[min(int(q * len(full)), len(full) - 1)] for q in TYPICAL_QUANTILES]
    typical = list(dict.fromkeys(p for p in picks if p != largest))
    return (int(largest[0]), int(largest[1])), [(int(s), int(d)) for s, d in typical]


def plot_series(
    frame: pd.DataFrame, series: Sequence[tuple[int, int]], featured: str, title: str, path: Path
) -> Path:
    """Actual against each model's p50; the featured model's P10-P90 band where it has one."""
    fig, axes = plt.subplots(
        len(series), 1, figsize=(9, 3.2 * len(series)), squeeze=False, layout="constrained"
    )
    for ax, (store, dept) in zip(axes[:, 0], series, strict=True):
        rows = frame[(frame["store"] == store) & (frame["dept"] == dept)].sort_values("target_date")
        actual = rows.drop_duplicates("target_date")
        ax.plot(actual["target_date"], actual["actual"], color="black", lw=1.6, label="actual")
        for name, part in rows.groupby("model", sort=False):
            main = name == featured
            ax.plot(
                part["target_date"],
                part["p50"],
                lw=1.6 if main else 0.9,
                ls="-" if main else "--",
                label=name,
            )
            if main and part["p10"].notna().all():
                ax.fill_between(
                    part["target_date"], part["p10"], part["p90"], alpha=0.25, label=f"{name} P10-P90"
                )
        ax.set(title=f"store {store}, dept {dept}", ylabel="weekly sales ($)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=3)
    fig.suptitle(title)
    fig.autofmt_xdate()
    return _save(fig, path)


def plot_variable_importance(importance: Mapping[str, Mapping[str, float]], title: str, path: Path) -> Path:
    """One bar chart per input group (static, encoder, decoder) of the mean selection weights."""
    groups = [(g, dict(sorted(v.items(), key=lambda kv: kv[1]))) for g, v in importance.items() if v]
    width = max(len(groups), 1)
    fig, axes = plt.subplots(1, width, figsize=(5 * width, 4), squeeze=False, layout="constrained")
    for ax, (group, weights) in zip(axes[0], groups, strict=False):
        ax.barh(list(weights), list(weights.values()))
        ax.set(title=group, xlabel="mean variable selection weight")
    fig.suptitle(title)
    return _save(fig, path)


def plot_attention(weights: Sequence[float], title: str, path: Path) -> Path:
    """Mean attention over the encoder weeks, oldest first, ending at the week before the origin."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    lags = np.arange(-len(weights), 0)
    ax.bar(lags, weights)
    ax.set(xlabel="encoder week relative to the origin", ylabel="mean attention weight", title=title)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


# ----------------------------------------------------------------------------- markdown


def _fmt(name: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name in metrics.FRACTIONS:
        return f"{100 * value:.1f}%"
    return f"{value:,.0f}"


def _gain(baseline: float, score: float) -> str:
    return f"{100 * (baseline - score) / baseline:+.1f}%" if baseline else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    header = [h.replace("|", "\\|") for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _featured(models: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The model whose band is drawn: a trained (non-baseline) model first, else the best with quantiles."""
    banded = [n for n, e in models.items() if e.get("has_quantiles")]
    trained = [n for n in banded if not models[n]["description"].get("baseline")]
    pool = trained or banded
    return min(pool, key=lambda n: models[n]["score"]) if pool else None


def _section(name: str, entry: Mapping[str, Any], reports_dir: Path) -> list[str]:
    models = entry["models"]
    period = entry["test_period"]
    score = (
        "mean of the fold WMAEs" if entry["score"] == "wmae_mean_of_folds" else "pooled WMAE over all steps"
    )
    retrain = entry.get("retrain_every")
    lines = [
        f"## {name.capitalize()}",
        "",
        entry["description"] + ".",
        "",
        f"- Test period {period['start']} to {period['end']} ({period['weeks']} weeks), {entry['origins']} "
        f"origins, up to {entry['horizon']} weeks ahead; evaluated {entry['generated_at']}.",
        f"- Score: {score}. Trained models retrained "
        + (
            f"every {retrain} {'fold' if name == 'backtest' else 'origin'}(s)"
            if retrain
            else "never (trained once, before the first origin)"
        )
        + "; the baselines are re-estimated at every origin.",
        f"- {entry['mape_note']}; {entry['imputation_note']} (column *imputed rows*).",
    ]
    lines += [f"- **{note}**" for note in entry.get("notes", [])]
    header = ["model", "score", *(metrics.LABELS[m] for m in metrics.METRICS), "rows", "imputed rows"]
    rows = [
        [
            f"`{n}`",
            f"**{e['score']:,.1f}**",
            *(_fmt(m, e["pooled"][m]) for m in metrics.METRICS),
            f"{e['rows']:,}",
            f"{e['imputed_rows']:,}",
        ]
        for n, e in models.items()
    ]
    lines += ["", "### Models against metrics (pooled over all scored rows)", "", *_table(header, rows)]
    baselines = [n for n, e in models.items() if e["description"].get("baseline")]
    if baselines:
        gain = [
            [f"`{n}`", *(_gain(models[b]["score"], e["score"]) if b != n else "-" for b in baselines)]
            for n, e in models.items()
        ]
        lines += ["", "### Gain over each baseline (score reduction; positive is better)", ""]
        lines += _table(["model", *(f"vs `{b}`" for b in baselines)], gain)
    steps = sorted({h for e in models.values() for h in e["per_horizon"]}, key=int)
    per_h = [
        [f"`{n}`", *(_fmt("wmae", e["per_horizon"].get(h, {}).get("wmae")) for h in steps)]
        for n, e in models.items()
    ]
    lines += ["", "### WMAE per horizon step", "", *_table(["model", *(f"h={h}" for h in steps)], per_h)]
    if name == "backtest":
        folds = sorted({f for e in models.values() for f in e.get("per_fold", {})}, key=int)
        per_f = [
            [f"`{n}`", *(_fmt("wmae", e["per_fold"][f]["wmae"]) for f in folds)] for n, e in models.items()
        ]
        lines += ["", "### WMAE per fold", "", *_table(["model", *(f"fold {f}" for f in folds)], per_f)]
    charts = sorted(p.name for p in reports_dir.glob(f"*_{name}*.png"))
    if charts:
        lines += ["", "### Charts", ""] + [f"![{c}]({c})" for c in charts]
    lines += ["", "### Versions", "", "Data:"]
    for source, info in entry["data"].get("files", {}).items():
        lines.append(f"- {source}: `{info['path']}` (sha256 `{(info['sha256'] or 'n/a')[:16]}…`)")
    data = entry["data"]
    if "rows" in data:
        span = f"{data['first_week']}..{data['last_week']}"
        lines.append(f"- {data['rows']:,} sales rows, {data['series']:,} series, {span}")
    lines += ["", "Models:"]
    for n, e in models.items():
        params = ", ".join(
            f"{k}={v}" for k, v in e["description"].items() if k not in {"name", "method", "baseline"}
        )
        lines.append(f"- `{n}`: {e['description'].get('method', '')}" + (f" ({params})" if params else ""))
    return [*lines, ""]


def render(reports_dir: Path) -> list[Path]:
    """Redraw report.md and the charts from metrics.json and the forecast files."""
    payload = _read_metrics(reports_dir / METRICS_FILE)
    written: list[Path] = []
    for name, entry in payload["protocols"].items():
        models = entry["models"]
        title = f"{name}: WMAE per horizon step"
        written.append(plot_wmae_by_horizon(models, title, reports_dir / f"wmae_by_horizon_{name}.png"))
        parquet = forecasts_path(reports_dir, name)
        featured = _featured(models) or next(iter(models))
        if parquet.is_file():
            written += _series_charts(name, parquet, featured, reports_dir)
        for model, info in models.items():
            interp = info.get("interpretation") or {}
            if interp.get("variable_importance"):
                written.append(
                    plot_variable_importance(
                        interp["variable_importance"],
                        f"{model}: variable importance ({name})",
                        reports_dir / f"variable_importance_{name}_{model}.png",
                    )
                )
            if interp.get("attention"):
                written.append(
                    plot_attention(
                        interp["attention"],
                        f"{model}: mean attention over the encoder weeks ({name})",
                        reports_dir / f"attention_{name}_{model}.png",
                    )
                )
    lines = [
        "# Evaluation report",
        "",
        f"Written by {payload.get('generated_by', 'salesforecast')}; regenerate with "
        "`salesforecast evaluate --protocol holdout|backtest`, redraw with `salesforecast report`. "
        "Forecasts of every model are in `forecasts_<protocol>.parquet` (one row per model, store, "
        "dept, origin and step, with the actual), machine-readable metrics in `metrics.json`.",
        "",
    ]
    if any(entry.get("data", {}).get("synthetic") for entry in payload["protocols"].values()):
        lines += [
            "> **Synthetic data.** These figures come from files generated by `salesforecast data "
            "synth`; they test the pipeline and say nothing about forecasting real sales. Pass "
            "`--data-dir` with the Kaggle files for real figures.",
            "",
        ]
    for name, entry in payload["protocols"].items():
        lines += _section(name, entry, reports_dir)
    report = reports_dir / REPORT_FILE
    atomic_write(report, lambda tmp: tmp.write_text("\n".join(lines)))
    return [report, *written]


def _series_charts(name: str, parquet: Path, featured: str, reports_dir: Path) -> list[Path]:
    frame = pd.read_parquet(
        parquet, columns=["model", "store", "dept", "target_date", "h", "p50", "p10", "p90", "actual"]
    )
    if name == "holdout":
        frame = frame[frame["h"] == 1]  # one-step-ahead path; the backtest's folds tile the period once
    if frame.empty:
        return []
    largest, typical = pick_series(frame)
    what = "h = 1 forecasts" if name == "holdout" else "fold forecasts"
    out = [
        plot_series(
            frame,
            [largest],
            featured,
            f"{name}: largest series, {what}",
            reports_dir / f"forecast_{name}_largest.png",
        )
    ]
    if typical:
        out.append(
            plot_series(
                frame,
                typical,
                featured,
                f"{name}: typical series (sales quartiles), {what}",
                reports_dir / f"forecast_{name}_typical.png",
            )
        )
    return out
