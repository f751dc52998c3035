"""What the study's notebooks call: a context (profile, output folders, versions) and the standard tables and
figures, so a notebook holds only its narrative, its parameters and a few calls.

Every table is written as CSV (raw numbers), Markdown and LaTeX to ``<output>/tables``; every figure as PNG
and PDF to ``<output>/figures``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lanet_core import reporting  # noqa: E402
from lanet_core.evaluation import summary_metrics  # noqa: E402
from lanet_core.paths import project_root  # noqa: E402
from lanet_core.stats import diff_ci, mean_ci  # noqa: E402,F401  (diff_ci: re-exported, moved to stats)
from lanet_core.study.profiles import Profile, load_profile  # noqa: E402
from lanet_core.study.records import ExperimentResults, run_experiment  # noqa: E402

CLS_METRICS = ["accuracy", "precision_macro", "recall_macro", "f1_macro", "auc"]
LOC_METRICS = ["iou", "dice"]
TUNED_METRICS = ["iou_tuned", "dice_tuned"]  # at the lesion threshold tuned on each run's validation split
BOX_METRICS = ["iou_box", "dice_box"]
NEAR_DUPLICATES_TABLE = "busi_near_duplicates"
PREVIEW_DPI = 72  # inline figures in notebooks (the saved PNG/PDF keep their own dpi)


@dataclass
class Study:
    """The notebook's handle on the study: ``study = setup(profile, train)``."""

    profile: Profile
    train: bool

    @property
    def tables_dir(self) -> Path:
        return self.profile.tables_dir

    @property
    def figures_dir(self) -> Path:
        return self.profile.figures_dir

    def experiment(self, name: str) -> ExperimentResults:
        """Train-or-load the runs of an experiment (load only when ``train`` is False) and report gaps."""
        res = run_experiment(name, self.profile, train=self.train, progress=True)
        print(res.status())
        return res

    def table(self, df: pd.DataFrame, name: str, caption: str | None = None) -> pd.DataFrame:
        """Write ``name`` (CSV with every column, Markdown and LaTeX as a reader sees it) and return ``df``;
        shown in a notebook, it displays the same way (:func:`lanet_core.reporting.display_table`: formatted
        metrics with their significance marks, units in the headers, caption), a column selection of it too."""
        reporting.write_table(df, name, self.tables_dir, caption=caption)
        df.attrs["lanet_table"] = name
        df.attrs["lanet_caption"] = caption or ""
        df.attrs["lanet_columns"] = tuple(map(str, df.columns))
        return df

    def figure(self, fig, stem: str, dpi: int = 200) -> None:
        """Save ``stem.png`` and ``stem.pdf`` (deterministic bytes) and, inside a notebook, show the same figure
        inline at screen resolution (``PREVIEW_DPI``, also deterministic), so executed notebooks stay small; the
        full-resolution files are under ``figures/``."""
        reporting.save_fig(fig, stem, self.figures_dir, dpi=dpi)
        if _in_kernel():
            import io

            from IPython.display import Image, display

            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=min(dpi, PREVIEW_DPI), bbox_inches="tight", metadata={"Software": None})
            display(Image(data=buf.getvalue()))
        plt.close(fig)

    # ------------------------------------------------------------------ standard tables
    def comparison(self, runs: pd.DataFrame, metrics: Sequence[str], reference: str, name: str, *,
                   caption: str | None = None, group_cols: Sequence[str] = ("method",),
                   order: Sequence[str] | None = None) -> pd.DataFrame:
        """Mean ± 95 % CI over seeds per method, two-sided Welch t-tests against ``reference`` (:data:`~lanet_core.stats.SIGNIFICANCE_TEST`)."""
        metrics = [m for m in metrics if m in runs and runs[m].notna().any()]
        if runs.empty or not metrics:
            print(f"{name}: no finished runs with {metrics}")
            return pd.DataFrame()
        runs = runs[runs[metrics].notna().any(axis=1)]  # e.g. classifiers in a localisation table
        if reference not in set(runs["method"]):
            reference = runs["method"].iloc[0]
        tab = reporting.comparison_table(runs, metrics, reference, group_cols=group_cols, order=order)
        sig = f"two-sided Welch t-test over seeds vs {reference}"  # the display adds the key to its marks
        return self.table(tab, name, f"{caption}; {sig}" if caption else sig)

    def localisation(self, runs: pd.DataFrame, reference: str, name: str, *, group_cols: Sequence[str] = ("method",),
                     order: Sequence[str] | None = None, caption: str | None = None) -> pd.DataFrame:
        """IoU/Dice at the paper's threshold 0.5 and at each run's validation-tuned threshold, beside the lesion
        map's size and its oracle ceiling (the IoU of a perfect predictor of the training target,
        :mod:`lanet_core.ceilings`): read a coarse map's IoU against its ceiling, not against 1."""
        metrics = [m for m in LOC_METRICS + TUNED_METRICS if m in runs and runs[m].notna().any()]
        if runs.empty or not metrics:
            print(f"{name}: no finished runs with lesion maps")
            return pd.DataFrame()
        runs = runs[runs[metrics].notna().any(axis=1)].copy()
        if reference not in set(runs["method"]):
            reference = runs["method"].iloc[0]
        extra = [c for c in ("lesion_map", "iou_ceiling") if c in runs]
        if "iou_ceiling" in runs:
            runs["iou_ceiling"] = runs["iou_ceiling"].round(3)
        tab = reporting.comparison_table(runs, metrics, reference, group_cols=group_cols, order=order, extra_cols=extra)
        if "threshold_val" in runs and runs["threshold_val"].notna().any():
            thr = runs.groupby(list(group_cols), dropna=False)["threshold_val"].agg(
                lambda x: "" if x.isna().all() else f"{x.min():.2f}-{x.max():.2f}" if x.min() != x.max() else f"{x.min():.2f}")
            tab = tab.merge(thr.rename("threshold (val)").reset_index(), on=list(group_cols), how="left")
        cap = caption or ("Localisation: IoU/Dice at 0.5 (the paper's) and at the validation-tuned threshold; "
                          "lesion map size and its oracle IoU ceiling at 0.5 on the same test images")
        return self.table(tab, name, cap)

    def bootstrap(self, res: ExperimentResults, reference: str, name: str, metric_cols=("correct", "iou"),
                  group_cols: Sequence[str] = ("method",), methods: Sequence[str] | None = None) -> pd.DataFrame:
        """Paired per-image bootstrap CI of each method's difference to ``reference`` over the test images.

        ``methods`` restricts the table to one family of rows (``reference`` is always kept), e.g. one ablation
        of LA-Net-fine inside an experiment that also holds the stride-32 ablation.
        """
        per = res.per_image()
        if methods is not None and not per.empty:
            if isinstance(methods, str):
                raise TypeError("bootstrap(methods=...) takes a list of method names, not one string")
            per = per[per["method"].isin({*methods, reference})]
            if per["method"].nunique() < 2:
                print(f"{name}: no method of {list(methods)} besides {reference} has per-image records")
                return pd.DataFrame()
        cols = [c for c in metric_cols if c in per]
        if per.empty or not cols or reference not in set(per["method"]):
            return pd.DataFrame()
        tab = reporting.paired_bootstrap_table(per, reference, metric_cols=cols, group_cols=group_cols,
                                               n_resamples=2000)
        return self.table(tab, name, "Paired bootstrap over test images (per-image values averaged over seeds)")

    def leak_free_ids(self) -> set[str] | None:
        """Test image ids without a suspected near-duplicate in train/val (from the data-audit notebook) and not a
        member of a same-scan opposite-label pair (:mod:`lanet_core.data.conflicts`: its truth is unknown)."""
        path = self.tables_dir / f"{NEAR_DUPLICATES_TABLE}.csv"
        if not path.is_file():
            return None
        pairs = pd.read_csv(path, dtype=str)
        suspects = set(pairs.loc[pairs["suspected_leak"] == "True", "test_id"]) if len(pairs) else set()
        from lanet_core.data.sources import load_manifest

        from lanet_core.data.conflicts import label_conflict_ids

        rows, _, _ = load_manifest(self.profile.dataset("busi"))
        return set(rows.loc[rows["split"] == "test", "image_id"]) - suspects - label_conflict_ids()

    def leak_free(self, res: ExperimentResults, metrics: Sequence[str], reference: str, name: str,
                  group_cols: Sequence[str] = ("method",)) -> pd.DataFrame:
        """The same comparison re-scored on the test images with no suspected twin in training."""
        ids = self.leak_free_ids()
        per = res.per_image()
        if ids is None or per.empty:
            print("leak-free companion: no near-duplicate list yet (run 01_data_audit first)")
            return pd.DataFrame()
        keys = ["method", "seed", *[g for g in group_cols if g != "method"]]
        rows = []
        for key, df in per[per["image_id"].isin(ids)].groupby(keys, dropna=False):
            rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), **summary_metrics(df)})
        runs = pd.DataFrame(rows)
        print(f"leak-free subset: {len(ids)} test images")
        return self.comparison(runs, metrics, reference, name, group_cols=group_cols,
                               order=list(pd.unique(per["method"])),  # the full table's order, not alphabetical
                               caption=f"Re-scored on the {len(ids)} test images without a suspected near-duplicate in "
                                       "training and without a same-scan opposite-label twin")

    def difference(self, runs: pd.DataFrame, by: str, a: str, b: str, metrics: Sequence[str], name: str, *,
                   group_cols: Sequence[str] = ("method",), caption: str | None = None) -> pd.DataFrame:
        """Per group, the difference of means ``a - b`` of the column ``by`` (e.g. init ImageNet - scratch),
        with a 95 % CI and a two-sided p from Welch's t-test over seeds ("identical repeats" when both
        groups have zero variance)."""
        rows = []
        if runs.empty or by not in runs:
            return pd.DataFrame()
        groups = runs.groupby(list(group_cols), dropna=False) if group_cols else [((), runs)]
        for key, df in groups:
            key = key if isinstance(key, tuple) else (key,)
            row = dict(zip(group_cols, key))
            for m in metrics:
                if m not in df:
                    continue
                xa = df.loc[df[by] == a, m].dropna().to_numpy(float)
                xb = df.loc[df[by] == b, m].dropna().to_numpy(float)
                if len(xa) == 0 or len(xb) == 0:
                    continue
                row.update(diff_ci(xa, xb, m))
            if len(row) > len(group_cols):
                rows.append(row)
        out = pd.DataFrame(rows)
        cap = caption or f"{reporting.axis_label(by)}: {a} minus {b}, mean difference with 95 % CI and p (Welch)"
        return self.table(out, name, cap) if len(out) else out

    def external(self, in_domain: pd.DataFrame, external: pd.DataFrame, metrics: Sequence[str], name: str,
                 trained_on: str, tested_on: str) -> pd.DataFrame:
        """In-domain vs external test metrics of the same runs: one row per method and metric (its unit in the metric
        cell), mean ± 95 % CI over seeds in-domain and external, and the drop (in-domain minus external, 95 % CI and
        p of Welch's t-test; its numbers in ``drop_diff``, ``drop_low``, ``drop_high``, ``drop_p``)."""
        if external.empty:
            print(f"{name}: no external evaluations yet")
            return pd.DataFrame()
        rows = []
        for method, ext in external.groupby("method"):
            ind = in_domain[in_domain["method"] == method]
            for m in metrics:
                if m not in ext or ext[m].isna().all():
                    continue
                drop = diff_ci(ind[m].dropna().to_numpy(float), ext[m].dropna().to_numpy(float), m)
                rows.append({"method": method, "metric": m, "n": len(ext),
                             "in-domain": reporting.format_metric_ci(m, *_mean_hw(ind[m])),
                             "external": reporting.format_metric_ci(m, *_mean_hw(ext[m])), "drop": drop[m],
                             **{f"drop_{k}": drop[f"{m}_{k}"] for k in ("diff", "low", "high", "p")}})
        return self.table(pd.DataFrame(rows), name,
                          f"Trained on {trained_on}, tested on {tested_on}: mean ± 95 % CI over seeds in-domain and "
                          "external, and the drop (in-domain minus external, Welch)")

    # ------------------------------------------------------------------ standard figures
    def conditions(self, runs: pd.DataFrame) -> str:
        """The conditions line of a figure over ``runs`` (dataset, test images, seeds, input size, initialisation;
        :func:`lanet_core.study.figures.run_conditions`)."""
        from lanet_core.study.figures import run_conditions

        return run_conditions(runs, self.profile.output / "runs")

    def bars(self, runs: pd.DataFrame, metrics: Sequence[str], reference: str, stem: str,
             order: Sequence[str] | None = None, title: str | None = None) -> None:
        """One panel per metric, one row per method: mean, 95 % CI, seeds, stars vs ``reference``
        (:func:`lanet_core.reporting.bars_figure`), saved as ``stem``."""
        fig = reporting.bars_figure(runs, metrics, reference, order=order, title=title,
                                    conditions=self.conditions(runs) if len(runs) else None)
        if fig is not None:
            self.figure(fig, stem)

    def lines(self, runs: pd.DataFrame, x: str, metrics: Sequence[str], stem: str, title: str | None = None) -> None:
        """One panel per metric: mean ± 95 % CI vs ``x`` per method (:func:`lanet_core.reporting.lines_figure`),
        saved as ``stem``."""
        fig = reporting.lines_figure(runs, x, metrics, title=title,
                                     conditions=self.conditions(runs) if len(runs) else None)
        if fig is not None:
            self.figure(fig, stem)


def _mean_hw(values: pd.Series) -> tuple[float, float]:
    ci = mean_ci(values)
    return ci.mean, ci.half_width


def reference_method(runs: pd.DataFrame, suffix: str = "+LA-Net") -> str | None:
    """The LA-Net row the comparisons test against: the first method whose name ends with ``suffix``."""
    return next((m for m in runs["method"] if m.endswith(suffix)), None) if len(runs) else None


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill), False in a plain Python process."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _readable_html(df: pd.DataFrame) -> str:
    """A study table as a reader sees it (:func:`lanet_core.reporting.display_html`, the same display as its Markdown
    and LaTeX files): significance marks in the value cells, units in the headers, one p-value format, no numeric
    companions, values that never wrap; its caption above, no index. Other frames: pandas' own HTML."""
    if not _is_study_table(df):
        return df._repr_html_()
    return reporting.display_html(df, df.attrs.get("lanet_caption") or None, df.attrs["lanet_table"])


def _readable_text(df: pd.DataFrame, p, cycle) -> None:
    p.text(reporting.display_markdown(reporting.display_table(df)) if _is_study_table(df) else repr(df))


def _is_study_table(df: pd.DataFrame) -> bool:
    """A table written by :meth:`Study.table`, or rows and columns selected from it. A frame derived from it in
    another shape (a pivot, a groupby) keeps pandas' ``attrs`` but not its columns: shown as a plain frame, without
    the study table's caption."""
    if not df.attrs.get("lanet_table"):
        return False
    columns = df.attrs.get("lanet_columns")
    return columns is None or (df.columns.nlevels == 1 and set(map(str, df.columns)) <= set(columns))


def _register_display() -> None:
    """In a kernel: study tables display in their readable form (the full frame stays in the CSV)."""
    if not _in_kernel():
        return
    from IPython import get_ipython

    formatters = get_ipython().display_formatter.formatters
    formatters["text/html"].for_type(pd.DataFrame, _readable_html)
    formatters["text/plain"].for_type(pd.DataFrame, _readable_text)


def setup(profile: str = "cpu", train: bool = False) -> Study:
    """The opening cell of every notebook: profile, versions, output folders, deterministic plotting.

    The defaults render the committed ``cpu`` results and train nothing (a notebook opened and run as it is);
    ``train=True`` trains the runs that are missing first. The study runner passes both explicitly."""
    prof = load_profile(profile)
    os.environ.setdefault("TQDM_DISABLE", "1")
    np.set_printoptions(precision=4, suppress=True)
    _register_display()
    versions = {p: metadata.version(p) for p in ("torch", "timm", "segmentation-models-pytorch", "grad-cam", "scipy")}
    try:
        shown_out = prof.output.relative_to(project_root())  # no machine paths in executed notebooks
    except ValueError:
        shown_out = prof.output
    print(f"lanet study, profile {prof.name!r} ({'train missing runs' if train else 'render only'}); "
          f"seeds {prof.seeds}; output {shown_out}")
    if _in_kernel() and prof.name != "smoke" and not os.environ.get("LANET_STUDY_RUNNER"):  # a person, not the runner
        print("  (tables and figures are rewritten there: from unchanged run records the bytes are identical, so "
              "`git status` shows only what this session really changed; change `profile` in the first cell, "
              "or set LANET_RESULTS_DIR to write elsewhere)")
    print(f"python {platform.python_version()}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    prof.tables_dir.mkdir(parents=True, exist_ok=True)
    prof.figures_dir.mkdir(parents=True, exist_ok=True)
    return Study(prof, train)


def paper_numbers(table: str | None = None) -> pd.DataFrame:
    """The authors' reported BUSI numbers (mean ± 95 % CI over 3 repeats; authors-code.md section 6)."""
    df = pd.read_csv(Path(__file__).with_name("paper_numbers.csv"), dtype={"image_size": str}, keep_default_na=False)
    return df if table is None else df[df["table"] == table].reset_index(drop=True)


PAPER_ALIASES = {"U-Net": "UNet", "ViT-B/16": "ViT", "ViT-S/16": "ViT", "ViT-Ti/16": "ViT"}


def with_paper(ours: pd.DataFrame, table: str, metrics: Sequence[str], key: str = "method",
               size: str | int | None = None, source: str = "paper") -> pd.DataFrame:
    """Our mean ± CI beside the paper's for the methods both have (columns ``<m>`` and ``<m> (<source>)``).

    ``size``: the paper's input size to compare with (its tables have 256 and 512 px rows). ``source``: what the
    quoted column is, where it is not the published table (e.g. the authors' ResNet18 ablation CSV).
    """
    paper = paper_numbers(table)
    if size is not None:
        paper = paper[paper["image_size"].astype(str) == str(size)]
    if ours.empty:
        return ours
    out = ours[[key] + [m for m in metrics if m in ours]].copy()
    for m in metrics:
        if m not in ours:
            continue
        lookup = {r["method"]: r["value"] for _, r in paper[paper["metric"] == m].iterrows()}
        def find(name: str) -> str:
            alias = PAPER_ALIASES.get(name, name)
            return lookup.get(alias) or lookup.get(f"{alias} (1)", "")  # Table 6 rows carry the label share

        out[f"{m} ({source})"] = out[key].map(find)
    return out
