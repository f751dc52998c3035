"""JupyterLab keeps the study's paired notebooks clean: a save hook that stores a paired ``.ipynb`` output-free.

The notebooks in ``notebooks/`` are jupytext pairs: the reviewed percent-format ``.py`` and an output-free
``.ipynb`` (both committed; the executed copies with outputs are ``results/notebooks/``). JupyterLab would save the
outputs of a session, the kernel's ``language_info`` and widget state into the ``.ipynb``; this hook drops them on
every save of a paired notebook, exactly as ``nbstripout`` does for ``make sync`` (plus ``language_info``), so
opening, running and saving a notebook leaves ``git status`` clean unless a cell was edited. Jupytext's version
stamp is kept out of the ``.py`` header by the notebooks' metadata filter (``notebooks/jupytext.toml``).

``make install`` writes the server setting into the environment (:func:`install`: ``ContentsManager.pre_save_hook``
in ``<venv>/etc/jupyter/jupyter_server_config.json``), so every ``jupyter lab`` started from the project's
environment uses it. Notebooks that are not paired (a scratch notebook, the executed copies) keep their outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HOOK = "lanet_core.jupyter_hooks.strip_paired_notebook"
CONFIG_NAME = "jupyter_server_config.json"  # a jupyter_server_config.d/*.json would not be read (extensions only)

# what nbstripout drops by default (notebook and cell metadata), plus the kernel's language_info
NOTEBOOK_KEYS = ("signature", "widgets", "language_info")
CELL_KEYS = ("collapsed", "scrolled", "ExecuteTime", "execution", "heading_collapsed", "hidden", "trusted")


def is_paired(nb: dict[str, Any]) -> bool:
    """True for a notebook that jupytext pairs with a text file (``metadata.jupytext.formats`` names ``ipynb``
    and another format): its ``.ipynb`` is stored without outputs, the text file is the source."""
    formats = str(((nb.get("metadata") or {}).get("jupytext") or {}).get("formats") or "")
    names = [f.split(":")[0].strip().lstrip(".") for f in formats.split(",") if f.strip()]
    return any(n.endswith("ipynb") for n in names) and any(not n.endswith("ipynb") for n in names)


def strip_notebook(nb: dict[str, Any]) -> dict[str, Any]:
    """``nb`` (nbformat 4 as a dict) without outputs, execution counts, the volatile metadata nbstripout removes
    and ``language_info``; cell ids renumbered ``"0", "1", ...`` (nbstripout's default). Changed in place."""
    meta = nb.setdefault("metadata", {})
    for key in NOTEBOOK_KEYS:
        meta.pop(key, None)
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        if "id" in cell:
            cell["id"] = str(i)
        cmeta = cell.get("metadata") or {}
        for key in CELL_KEYS:
            cmeta.pop(key, None)
    return nb


def strip_paired_notebook(model: dict[str, Any], path: str = "", contents_manager: Any = None, **_: Any) -> None:
    """Jupyter server ``pre_save_hook``: a paired notebook's ``.ipynb`` is saved output-free (see the module)."""
    if model.get("type") != "notebook" or not str(path).endswith(".ipynb"):
        return
    content = model.get("content")
    if isinstance(content, dict) and is_paired(content):
        strip_notebook(content)


def config_path(prefix: str | Path | None = None) -> Path:
    """Where :func:`install` writes the server setting: ``<prefix>/etc/jupyter/jupyter_server_config.json``."""
    return Path(prefix or sys.prefix) / "etc" / "jupyter" / CONFIG_NAME


def install(prefix: str | Path | None = None) -> Path:
    """Set ``ContentsManager.pre_save_hook`` in the server config of the environment at ``prefix`` (default: this
    Python's), keeping every other setting of that file; unchanged when already set."""
    path = config_path(prefix)
    try:
        config = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        raise SystemExit(f"{path}: not valid JSON; fix or remove it, then run `make install` again") from None
    if (config.get("ContentsManager") or {}).get("pre_save_hook") != HOOK:
        config.setdefault("ContentsManager", {})["pre_save_hook"] = HOOK
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def installed(prefix: str | Path | None = None) -> bool:
    """Whether the environment at ``prefix`` has the save hook set."""
    path = config_path(prefix)
    try:
        return json.loads(path.read_text()).get("ContentsManager", {}).get("pre_save_hook") == HOOK
    except (OSError, ValueError, AttributeError):
        return False


if __name__ == "__main__":  # python -m lanet_core.jupyter_hooks install  (make install)
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m lanet_core.jupyter_hooks install")
    print(f"JupyterLab save hook: {install()}")
