"""Data audit of a manifest: counts, image and lesion geometry, example images, near-duplicates across splits.

The functions behind ``notebooks/01_data_audit``. A dataset is handled as an :class:`AuditSet` (manifest rows and
the data root their paths are relative to). Tables are plain DataFrames; figures are matplotlib figures the
notebook saves through ``Study.figure``.

Near-duplicates are found with the 64-bit perceptual hash (``imagehash.phash``) that the manifest validator uses
(:mod:`lanet_core.data.validate`), compared by Hamming distance (number of differing bits, 0..64). Hashes are
cached under ``<cache>/phash/`` keyed by the SHA-256 of each file's bytes, so every image is decoded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import imagehash
import matplotlib

matplotlib.use("Agg")
import matplotlib.legend_handler  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.spatial.distance import cdist  # noqa: E402

from lanet_core.data.images import image_size, mask_to_box, read_image, read_mask_union  # noqa: E402
from lanet_core.data.manifest import LABELS, SPLITS, BBox, mask_paths, parse_bbox  # noqa: E402
from lanet_core.io import atomic_write_text, file_sha256  # noqa: E402
from lanet_core.data.validate import NEAR_DUPLICATE_MAX_DISTANCE, image_fingerprint  # noqa: E402
from lanet_core.errors import DataError  # noqa: E402
from lanet_core.paths import cache_dir  # noqa: E402

if TYPE_CHECKING:
    from lanet_core.study.profiles import Profile

PHASH_BITS = 64
PHASH_CACHE_FILE = "phash64_v1.csv"  # bump the version if the hashing (decode, hash size) ever changes
# Class colours outside the method palette (reporting.METHOD_COLORS), so a class is never read as a method: Paul
# Tol's muted teal / wine (colour-blind safe), with a marker and a line style each so they also read in greyscale.
LABEL_COLORS = {"benign": "#44AA99", "malignant": "#882255"}
LABEL_MARKERS = {"benign": "o", "malignant": "^"}
LABEL_LINESTYLES = {"benign": "-", "malignant": "--"}
DATASET_NAMES = {"busi": "BUSI", "busbra": "BUS-BRA"}
TRUE_LESION_COLOR = "#ffffff"  # the true lesion outline on a black halo, as in every example grid (study.figures.GT_COLOR)
NEAR_DUPLICATE_COLUMNS = (
    "test_id", "test_label", "match_id", "match_label", "match_split", "distance", "suspected_leak",
    "label_conflict", "n_within_threshold",
)
GEOMETRY_QUANTITIES = ("width", "height", "lesion_area_frac", "centre_x", "centre_y", "box_aspect")

__all__ = [
    "NEAR_DUPLICATE_MAX_DISTANCE", "AuditSet", "load_audit_set", "data_counts", "image_geometry",
    "lesion_geometry", "geometry_summary", "plot_geometry", "plot_examples", "image_fingerprints",
    "phash_matrix", "hamming_distances", "near_duplicates", "leak_summary", "plot_distance_histograms",
    "pairs_to_show", "plot_pairs",
]


@dataclass(frozen=True)
class AuditSet:
    """One dataset to audit: ``rows`` (manifest DataFrame, text columns) with paths relative to ``data_root``."""

    name: str
    rows: pd.DataFrame
    data_root: Path
    source: str = ""  # the manifest spec or path it came from (shown in captions)

    @property
    def manifest_name(self) -> str:
        path = self.rows.attrs.get("path")
        return Path(path).name if path else self.name

    def where(self, i: int) -> str:
        """``"busi.csv row 3 (image_id 'benign (3)')"`` for the 0-based row position ``i``."""
        return f"{self.manifest_name} row {i + 1} (image_id {self.rows['image_id'].iat[i]!r})"


def load_audit_set(profile: Profile, key: str) -> AuditSet:
    """The profile's dataset ``key`` (``busi``, ``busbra``) as an :class:`AuditSet` (phantom specs are generated
    into the cache on first use)."""
    from lanet_core.data.sources import load_manifest

    spec = profile.dataset(key)
    rows, _, root = load_manifest(spec)
    return AuditSet(key, rows, Path(root), spec)


def _check_values(ds: AuditSet, column: str, allowed: Sequence[str]) -> None:
    bad = [i for i, v in enumerate(ds.rows[column]) if v not in allowed]
    if bad:
        shown = "; ".join(f"{ds.where(i)}: {ds.rows[column].iat[i]!r}" for i in bad[:5])
        raise DataError(f"{len(bad)} row(s) with an unknown {column} (allowed: {', '.join(allowed)}): {shown}")


# --------------------------------------------------------------------------------------------- counts


def data_counts(ds: AuditSet) -> pd.DataFrame:
    """Images and distinct patients per split and class, with per-split and overall totals (label/split ``all``).

    Columns: ``dataset, split, label, images, patients``. Rows with an empty ``patient_id`` count as their own
    patient. Raises DataError for labels or splits outside the schema.
    """
    _check_values(ds, "label", LABELS)
    _check_values(ds, "split", SPLITS)
    rows = ds.rows.assign(patient=ds.rows["patient_id"].where(ds.rows["patient_id"].str.strip() != "",
                                                              "image:" + ds.rows["image_id"]))
    out = []
    for split in (*SPLITS, "all"):
        in_split = rows if split == "all" else rows[rows["split"] == split]
        for label in (*LABELS, "all"):
            sub = in_split if label == "all" else in_split[in_split["label"] == label]
            out.append({"dataset": ds.name, "split": split, "label": label, "images": len(sub),
                        "patients": sub["patient"].nunique()})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------- geometry


def lesion_geometry(mask: np.ndarray | None, box: BBox | None, width: int, height: int) -> dict[str, float]:
    """Lesion size and position in one ``width`` x ``height`` px image, from a ``(H, W) bool`` mask and/or a box.

    ``lesion_area_frac``: lesion pixels / image pixels (the box area when there is no mask); ``centre_x``,
    ``centre_y``: centre of the box (the mask's extent when ``box`` is None) as fractions of width and height
    (0 = left/top); ``box_width_frac``, ``box_height_frac``; ``box_aspect`` = box width / height in pixels
    (> 1: wider than tall). NaN where there is no lesion (no mask and no box, or an all-zero mask).
    """
    if mask is not None and box is None:
        box = mask_to_box(mask)
    area = float(mask.mean()) if mask is not None else (box.width * box.height / (width * height) if box else np.nan)
    if box is None or box.is_empty():
        return {"lesion_area_frac": area, "centre_x": np.nan, "centre_y": np.nan, "box_width_frac": np.nan,
                "box_height_frac": np.nan, "box_aspect": np.nan}
    return {
        "lesion_area_frac": area,
        "centre_x": (box.x1 + box.x2) / 2 / width,
        "centre_y": (box.y1 + box.y2) / 2 / height,
        "box_width_frac": box.width / width,
        "box_height_frac": box.height / height,
        "box_aspect": box.width / box.height,
    }


def image_geometry(ds: AuditSet) -> pd.DataFrame:
    """One row per image: ``image_id, split, label, width, height, lesion_source`` (``mask``, ``box`` or ``none``)
    and the :func:`lesion_geometry` columns. Image sizes come from the file headers; masks (the union of an
    image's masks) are decoded. Errors name the manifest row and file."""
    out = []
    for i, rec in enumerate(ds.rows.to_dict("records")):
        try:
            width, height = image_size(ds.data_root / rec["image_path"])
            box = parse_bbox(rec["bbox"])
            masks = mask_paths(rec)
            mask = read_mask_union([ds.data_root / m for m in masks], size=(width, height)) if masks else None
        except (DataError, ValueError) as exc:
            raise DataError(f"{ds.where(i)}: {exc}") from None
        if box is not None and not box.inside(width, height):
            raise DataError(f"{ds.where(i)}: bbox {box} lies outside the {width}x{height} px image")
        source = "mask" if mask is not None else ("box" if box is not None else "none")
        out.append({"image_id": rec["image_id"], "split": rec["split"], "label": rec["label"], "width": width,
                    "height": height, "lesion_source": source, **lesion_geometry(mask, box, width, height)})
    return pd.DataFrame(out)


def geometry_summary(geom: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Summary statistics of :func:`image_geometry` per class and overall (label ``all``).

    Long format: ``dataset, label, quantity, n, mean, sd, min, q25, median, q75, max`` for each of
    :data:`GEOMETRY_QUANTITIES` (sizes in px, fractions of the image, aspect = width / height); NaNs are
    left out of ``n`` and the statistics.
    """
    out = []
    for label in (*LABELS, "all"):
        sub = geom if label == "all" else geom[geom["label"] == label]
        for q in GEOMETRY_QUANTITIES:
            d = sub[q].astype(float).describe()
            out.append({"dataset": dataset, "label": label, "quantity": q, "n": int(d["count"]),
                        "mean": d["mean"], "sd": d["std"], "min": d["min"], "q25": d["25%"], "median": d["50%"],
                        "q75": d["75%"], "max": d["max"]})
    return pd.DataFrame(out)


def _by_label(df: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
    for label in LABELS:
        sub = df[df["label"] == label]
        if len(sub):
            yield label, sub


def plot_geometry(geom: pd.DataFrame, title: str) -> Figure:
    """Four panels (a-d) from :func:`image_geometry`: image width vs height, lesion area fraction per class, box
    centres in normalised image coordinates (image orientation: depth downwards), box aspect ratio per class.
    7.2 in wide; classes by colour and marker / line style."""
    from lanet_core.reporting import journal_figure, label_panels, plot_context, figure_header

    with plot_context():
        fig, axes = journal_figure("double", 2.45, 1, 4)
        axes = axes[0]
        ax = axes[0]
        for label, sub in _by_label(geom):
            ax.scatter(sub["width"], sub["height"], s=5, alpha=0.6, color=LABEL_COLORS[label],
                       marker=LABEL_MARKERS[label], linewidths=0, label=label)
        ax.set(xlabel="Image width (px)", ylabel="Image height (px)", title="Image sizes")
        for ax, col, xlabel, panel in ((axes[1], "lesion_area_frac", "Lesion area / image area", "Lesion size"),
                                       (axes[3], "box_aspect", "Box width / height", "Lesion box aspect")):
            values = geom[col].dropna()
            bins = np.histogram_bin_edges(values, bins=30) if len(values) else 10
            for label, sub in _by_label(geom):
                ax.hist(sub[col].dropna(), bins=bins, histtype="step", linewidth=1.0, color=LABEL_COLORS[label],
                        linestyle=LABEL_LINESTYLES[label], label=label)
            ax.set(xlabel=xlabel, ylabel="Images", title=panel)
        axes[3].axvline(1.0, color="k", lw=0.6, ls=":")
        ax = axes[2]
        for label, sub in _by_label(geom):
            ax.scatter(sub["centre_x"], sub["centre_y"], s=5, alpha=0.6, color=LABEL_COLORS[label],
                       marker=LABEL_MARKERS[label], linewidths=0, label=label)
        ax.set(xlim=(0, 1), ylim=(1, 0), aspect="equal", xlabel="Box centre x / width",
               ylabel="Box centre y / height (depth)", title="Lesion positions")
        for ax in axes:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        label_panels(axes)
        handles, labels = axes[0].get_legend_handles_labels()
        hist_handles, _ = axes[1].get_legend_handles_labels()
        fig.legend(list(zip(handles, hist_handles)) if len(hist_handles) == len(handles) else handles, labels,
                   loc="outside lower center", ncol=len(labels), markerscale=1.5,
                   handler_map={tuple: matplotlib.legend_handler.HandlerTuple(ndivide=None)})
        figure_header(fig, title, ["Sizes from the file headers; lesion: union of the image's masks (its box "
                                   "where there is none); (c) depth downwards"])
    return fig


# --------------------------------------------------------------------------------------------- examples


def _show_image(ax, ds: AuditSet, i: int) -> None:
    """Image of row position ``i`` on ``ax`` (gray or RGB as stored), axes off."""
    rec = ds.rows.iloc[i]
    try:
        img = read_image(ds.data_root / rec["image_path"])
    except DataError as exc:
        raise DataError(f"{ds.where(i)}: {exc}") from None
    ax.imshow(img, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_examples(sets: Sequence[AuditSet], per_class: int = 4, seed: int = 0) -> Figure:
    """Paper Fig. 4: ``per_class`` images per class and dataset (seeded choice among images with a mask, test
    split first when it has enough) with the lesion mask drawn as a white outline. One row per dataset and class;
    7.2 in wide."""
    from matplotlib import patheffects

    from lanet_core.reporting import figure_header, journal_figure, plot_context

    groups = [(ds, label) for ds in sets for label in LABELS]
    cell = min(1.55, 6.6 / per_class)
    with plot_context():
        fig, axes = journal_figure("double", cell * len(groups) + 0.5, len(groups), per_class)
        halo = [patheffects.Stroke(linewidth=2.0, foreground="black"), patheffects.Normal()]
        for r, (ds, label) in enumerate(groups):
            rng = np.random.default_rng([seed, r])
            has_mask = ds.rows["mask_path"].str.strip() != ""
            pool = np.flatnonzero((ds.rows["label"] == label) & has_mask & (ds.rows["split"] == "test"))
            if len(pool) < per_class:
                pool = np.flatnonzero((ds.rows["label"] == label) & has_mask)
            chosen = np.sort(rng.choice(pool, size=min(per_class, len(pool)), replace=False)) if len(pool) else []
            for c in range(per_class):
                ax = axes[r, c]
                ax.grid(False)
                if c >= len(chosen):
                    ax.axis("off")
                    continue
                i = int(chosen[c])
                _show_image(ax, ds, i)
                rec = ds.rows.iloc[i]
                try:
                    mask = read_mask_union([ds.data_root / m for m in mask_paths(rec)])
                except DataError as exc:
                    raise DataError(f"{ds.where(i)}: {exc}") from None
                cs = ax.contour(mask.astype(float), levels=[0.5], colors=[TRUE_LESION_COLOR], linewidths=0.9)
                cs.set(path_effects=halo)
                ax.set_title(str(rec["image_id"]), loc="center")
            axes[r, 0].set_ylabel(f"{DATASET_NAMES.get(ds.name, ds.name)}\n{label}")
        figure_header(fig, None, ["White outline: the true lesion (union of the image's masks); test images where "
                                  f"the class has {per_class}, seeded choice (seed {seed})"])
    return fig


# --------------------------------------------------------------------------------------------- perceptual hashes


def _hash_hex(bits: np.ndarray) -> str:
    return str(imagehash.ImageHash(np.asarray(bits, dtype=bool).reshape(8, 8)))


def _read_hash_cache(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        return dict(zip(df["sha256"], df["phash"]))
    except (KeyError, ValueError, pd.errors.ParserError):  # a damaged cache is rebuilt, never trusted
        return {}


def _write_hash_cache(path: Path, new: dict[str, str]) -> None:
    merged = {**_read_hash_cache(path), **new}  # re-read: another process may have added entries meanwhile
    df = pd.DataFrame(sorted(merged.items()), columns=["sha256", "phash"])
    atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))


def image_fingerprints(ds: AuditSet, cache: bool = True) -> pd.DataFrame:
    """``image_id, sha256, phash`` (16 hex digits = 64 bits) for every row, in manifest order.

    The pHash is the validator's (:func:`lanet_core.data.validate.image_fingerprint`: the image decoded as RGB,
    ``imagehash.phash``, 8x8). With ``cache``, hashes are kept in ``<cache>/phash/phash64_v1.csv`` keyed by the
    SHA-256 of the file, so a re-run decodes nothing.
    """
    path = cache_dir() / "phash" / PHASH_CACHE_FILE
    known = _read_hash_cache(path) if cache else {}
    new: dict[str, str] = {}
    out = []
    for i, rec in enumerate(ds.rows.to_dict("records")):
        file = ds.data_root / rec["image_path"]
        try:
            sha = file_sha256(file)
            if sha not in known and sha not in new:
                new[sha] = _hash_hex(image_fingerprint(file).phash)
        except FileNotFoundError:
            raise DataError(f"{ds.where(i)}: image file not found: {file}") from None
        except (DataError, OSError) as exc:
            raise DataError(f"{ds.where(i)}: {exc}") from None
        out.append({"image_id": rec["image_id"], "sha256": sha, "phash": known.get(sha) or new[sha]})
    if cache and new:
        _write_hash_cache(path, new)
    return pd.DataFrame(out, columns=["image_id", "sha256", "phash"])


def phash_matrix(hexes: Sequence[str]) -> np.ndarray:
    """``(N, 64) bool`` bits of N pHash hex strings (as written by :func:`image_fingerprints`)."""
    try:
        bits = [imagehash.hex_to_hash(h).hash.flatten() for h in hexes]
    except (ValueError, TypeError) as exc:
        raise DataError(f"not a 64-bit pHash hex string ({exc})") from None
    if any(b.size != PHASH_BITS for b in bits):
        raise DataError(f"pHash strings must hold {PHASH_BITS} bits (16 hex digits)")
    return np.stack(bits) if bits else np.zeros((0, PHASH_BITS), dtype=bool)


def hamming_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M) int`` Hamming distances (differing bits) between ``(N, B)`` and ``(M, B)`` bool bit arrays."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"hamming_distances: need (N, B) and (M, B) bit arrays, got {a.shape} and {b.shape}")
    if not a.size or not b.size:
        return np.zeros((len(a), len(b)), dtype=int)
    return np.rint(cdist(a, b, metric="hamming") * a.shape[1]).astype(int)


def near_duplicates(rows: pd.DataFrame, fingerprints: pd.DataFrame,
                    threshold: int = NEAR_DUPLICATE_MAX_DISTANCE) -> pd.DataFrame:
    """For every test image, its nearest train/val image by pHash distance.

    ``rows``: manifest rows; ``fingerprints``: :func:`image_fingerprints` of them (matched on ``image_id``).
    Columns :data:`NEAR_DUPLICATE_COLUMNS`: ``distance`` in bits (0..64), ``suspected_leak`` = distance <=
    ``threshold``, ``label_conflict`` = the match has the other class, ``n_within_threshold`` = how many
    train/val images lie within the threshold. Ties go to the match listed first in the manifest. Sorted by
    distance, then test_id.
    """
    missing = sorted(set(rows["image_id"]) - set(fingerprints["image_id"]))
    if missing:
        raise DataError(f"near_duplicates: no fingerprint for {len(missing)} image(s), e.g. {missing[:3]}")
    fp = fingerprints.drop_duplicates("image_id").set_index("image_id")["phash"]
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    ref = rows[rows["split"].isin(["train", "val"])].reset_index(drop=True)
    if test.empty or ref.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in NEAR_DUPLICATE_COLUMNS})
    dist = hamming_distances(phash_matrix(fp.loc[test["image_id"]].tolist()),
                             phash_matrix(fp.loc[ref["image_id"]].tolist()))
    nearest = dist.argmin(axis=1)  # first minimum = first in manifest order
    match = ref.iloc[nearest].reset_index(drop=True)
    d = dist[np.arange(len(test)), nearest]
    out = pd.DataFrame({
        "test_id": test["image_id"], "test_label": test["label"], "match_id": match["image_id"],
        "match_label": match["label"], "match_split": match["split"], "distance": d.astype(int),
        "suspected_leak": d <= threshold, "label_conflict": test["label"].to_numpy() != match["label"].to_numpy(),
        "n_within_threshold": (dist <= threshold).sum(axis=1).astype(int),
    })
    return out.sort_values(["distance", "test_id"], kind="stable").reset_index(drop=True)


def leak_summary(table: pd.DataFrame, dataset: str, threshold: int) -> dict[str, object]:
    """Counts from a :func:`near_duplicates` table: test images, suspected leaks, leaks whose match has the
    other class, exact pHash matches (distance 0), median nearest distance."""
    leaks = table[table["suspected_leak"].astype(str) == "True"]
    return {
        "dataset": dataset, "threshold": threshold, "test_images": len(table), "suspected_leaks": len(leaks),
        "label_conflicts": int((leaks["label_conflict"].astype(str) == "True").sum()),
        "distance_0": int((table["distance"].astype(int) == 0).sum()),
        "median_nearest_distance": float(table["distance"].astype(float).median()) if len(table) else np.nan,
    }


def plot_distance_histograms(tables: dict[str, pd.DataFrame], threshold: int) -> Figure:
    """One panel per dataset: histogram of each test image's distance to its nearest train/val image, bars at
    or below ``threshold`` (suspected leaks) in vermillion and hatched, the others grey, the threshold as a dashed
    line. 7.2 in wide."""
    from lanet_core.reporting import OKABE_ITO, figure_header, journal_figure, label_panels, plot_context

    with plot_context():
        fig, axes = journal_figure("double", 2.5, 1, len(tables))
        for ax, (name, table) in zip(axes[0], tables.items()):
            d = table["distance"].astype(int).to_numpy()
            bins = np.arange(-0.5, (d.max() if len(d) else threshold) + 1.5)
            ax.hist(d[d <= threshold], bins=bins, color=OKABE_ITO["vermillion"], hatch="////", edgecolor="black",
                    linewidth=0.3, label=f"\u2264 {threshold}: suspected leak")
            ax.hist(d[d > threshold], bins=bins, color="0.65", label=f"> {threshold}")
            ax.axvline(threshold + 0.5, color="k", ls="--", lw=0.6)
            ax.set(xlabel="pHash distance to the nearest train/val image (bits)", ylabel="Test images",
                   title=f"{DATASET_NAMES.get(name, name)} ({len(d)} test images)")
            ax.set_ylim(0, 1.35 * max(np.bincount(d).max() if len(d) else 1, 1))  # headroom for the legend
            ax.legend(loc="upper left")
        label_panels(axes[0])
        figure_header(fig, None, ["64-bit perceptual hash (imagehash.phash); each test image's nearest train or "
                                  "validation image by Hamming distance"])
    return fig


def pairs_to_show(table: pd.DataFrame, threshold: int, n_below: int = 12, n_above: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(below, above)``: pairs of a :func:`near_duplicates` table to look at when judging ``threshold``.

    ``below``: the suspected leaks (distance <= threshold), all of them or ``n_below`` spread evenly over their
    sorted distances (so both the closest and the borderline ones are shown); ``above``: the ``n_above`` closest
    pairs above the threshold.
    """
    table = table.sort_values(["distance", "test_id"], kind="stable").reset_index(drop=True)
    d = table["distance"].astype(int)
    below, above = table[d <= threshold], table[d > threshold]
    if len(below) > n_below:
        below = below.iloc[np.unique(np.linspace(0, len(below) - 1, max(n_below, 1)).round().astype(int))]
    return below, above.head(n_above)


def plot_pairs(ds: AuditSet, table: pd.DataFrame, threshold: int, n_below: int = 12, n_above: int = 6,
               pairs_per_row: int = 3) -> Figure:
    """Test image beside its nearest train/val image for the pairs of :func:`pairs_to_show` (suspected leaks
    first, then, from a new row, the pairs just above ``threshold``), with ids, labels and distance. 7.2 in wide.
    Frame and title colour: vermillion = suspected leak; orange, bold = suspected leak whose match has the other
    class; grey = above the threshold."""
    from lanet_core.reporting import OKABE_ITO, figure_header, journal_figure, plot_context
    from lanet_core.reporting.plots import wrap

    below, above = pairs_to_show(table, threshold, n_below, n_above)
    rows_below = -(-len(below) // pairs_per_row)
    slots = [(divmod(k, pairs_per_row), p) for k, p in enumerate(below.itertuples(index=False))]
    slots += [(divmod(k + rows_below * pairs_per_row, pairs_per_row), p) for k, p in enumerate(above.itertuples(index=False))]
    n_rows = max(1, rows_below + -(-len(above) // pairs_per_row))
    cell = min(1.15, 7.0 / (2 * pairs_per_row))
    with plot_context():
        fig, axes = journal_figure("double", (0.8 * cell + 0.45) * n_rows + 0.5, n_rows, 2 * pairs_per_row)
        for ax in axes.flat:
            ax.axis("off")
        position = {image_id: i for i, image_id in enumerate(ds.rows["image_id"])}
        for (r, c), pair in slots:
            leak = int(pair.distance) <= threshold
            conflict = str(pair.label_conflict) == "True"
            color = (OKABE_ITO["orange"] if conflict else OKABE_ITO["vermillion"]) if leak else "0.45"
            weight = "bold" if conflict and leak else "normal"
            for j, (image_id, label, split) in enumerate(((pair.test_id, pair.test_label, "test"),
                                                           (pair.match_id, pair.match_label, pair.match_split))):
                ax = axes[r, 2 * c + j]
                ax.axis("on")
                ax.grid(False)
                _show_image(ax, ds, position[image_id])
                name = str(image_id) if str(image_id).startswith(str(label)) else f"{image_id} ({label})"
                ax.set_title(wrap(f"{split}: {name}", cell - 0.1), loc="center", color=color, fontweight=weight)
                for spine in ax.spines.values():  # a frame in the pair's colour groups the two images
                    spine.set_visible(True)
                    spine.set_edgecolor(color)
                    spine.set_linewidth(1.5)
            axes[r, 2 * c].set_xlabel(f"distance {int(pair.distance)} bits" + ("\n(label conflict)" if conflict else ""),
                                      color=color, fontweight=weight, loc="left")
        figure_header(fig, f"{DATASET_NAMES.get(ds.name, ds.name)}: test image | nearest train/val image",
                      [f"{len(below)} pair(s) at distance \u2264 {threshold} bits (suspected leaks), then the "
                       f"{len(above)} closest above. Frame and title: vermillion = suspected leak, orange (bold) = "
                       "suspected leak whose twin has the other class, grey = above the threshold"])
    return fig


# ---------------------------------------------------------------------------------------------------- complete leak audit

RAW_LAYOUTS = {"busi": ("BUSI/Dataset_BUSI_with_GT", ("benign", "malignant"))}


def with_dropped_rows(ds: AuditSet) -> tuple[AuditSet, pd.DataFrame]:
    """The audit set plus every image of the raw dataset that the manifest leaves out (``split = "dropped"``),
    and a table of those rows with the reason: byte-identical to a manifest image (named, with its split and
    label), or simply absent. Datasets without a known raw layout (phantoms, BUS-BRA: every image is listed)
    come back unchanged with an empty table."""
    cols = ["image_id", "label", "image_path", "reason"]
    layout = RAW_LAYOUTS.get(ds.name)
    base = ds.data_root / layout[0] if layout else None
    if base is None or not base.is_dir():
        return ds, pd.DataFrame(columns=cols)
    listed = set(ds.rows["image_path"])
    extra = []
    for label in layout[1]:
        for path in sorted((base / label).glob("*.png")):
            if "_mask" in path.stem:
                continue
            rel = f"{layout[0]}/{label}/{path.name}"
            if rel not in listed:
                extra.append({"image_id": path.stem, "label": label, "image_path": rel})
    if not extra:
        return ds, pd.DataFrame(columns=cols)
    by_sha = {file_sha256(ds.data_root / p): (i, s, lab) for i, p, s, lab in
              zip(ds.rows["image_id"], ds.rows["image_path"], ds.rows["split"], ds.rows["label"])}
    for rec in extra:
        twin = by_sha.get(file_sha256(ds.data_root / rec["image_path"]))
        rec["reason"] = (f"byte-identical to {twin[0]!r} ({twin[1]}, {twin[2]})"
                         + (": the same picture with the other label" if twin[2] != rec["label"] else "")
                         if twin else "not in the manifest")
    dropped = pd.DataFrame(extra, columns=cols)
    rows = pd.concat([ds.rows, dropped.drop(columns="reason").assign(split="dropped")], ignore_index=True)
    rows = rows.fillna("")
    rows.attrs.update(ds.rows.attrs)
    return AuditSet(ds.name, rows, ds.data_root, ds.source), dropped


def near_duplicate_pairs(rows: pd.DataFrame, fingerprints: pd.DataFrame,
                         threshold: int = NEAR_DUPLICATE_MAX_DISTANCE) -> pd.DataFrame:
    """*Every* (test, other) pair within ``threshold`` bits, not only each test image's nearest match: the other
    image may be in train, val or among the rows the manifest drops (``split = "dropped"``). Sorted by
    distance, test id, other id."""
    cols = ["test_id", "test_label", "match_id", "match_label", "match_split", "distance", "label_conflict"]
    fp = fingerprints.drop_duplicates("image_id").set_index("image_id")["phash"]
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    ref = rows[rows["split"].isin(["train", "val", "dropped"])].reset_index(drop=True)
    if test.empty or ref.empty:
        return pd.DataFrame(columns=cols)
    dist = hamming_distances(phash_matrix(fp.loc[test["image_id"]].tolist()), phash_matrix(fp.loc[ref["image_id"]].tolist()))
    ti, ri = np.nonzero(dist <= threshold)
    out = pd.DataFrame({
        "test_id": test["image_id"].to_numpy()[ti], "test_label": test["label"].to_numpy()[ti],
        "match_id": ref["image_id"].to_numpy()[ri], "match_label": ref["label"].to_numpy()[ri],
        "match_split": ref["split"].to_numpy()[ri], "distance": dist[ti, ri].astype(int),
    })
    out["label_conflict"] = out["test_label"] != out["match_label"]
    from lanet_core.data.splits import natural_key

    order = sorted(range(len(out)), key=lambda i: (out["distance"].iat[i], natural_key(out["test_id"].iat[i]),
                                                    natural_key(out["match_id"].iat[i])))
    return out.iloc[order].reset_index(drop=True)[cols]
