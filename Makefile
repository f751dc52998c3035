# The two set-up commands of the README: `make study` and `make test`.
# Both create .venv if missing and install the pinned project once; a second
# call installs nothing (the stamp below is newer than pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LANET := $(VENV)/bin/lanet
STAMP := $(VENV)/.lanet-installed
SAVE_HOOK := $(VENV)/etc/jupyter/jupyter_server_config.json
PROFILE ?= cpu

.PHONY: install test test-fast study smoke figures lab sync lint clean-cache browser slurm

install: $(STAMP) $(SAVE_HOOK)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	$(PY) -m ipykernel install --sys-prefix --name lanet --display-name "Python (lanet)" >/dev/null
	@touch $(STAMP)
	@echo "lanet installed into $(VENV)"

## JupyterLab from this environment saves the paired notebooks (notebooks/*.ipynb) output-free, so opening, running
## and saving one leaves `git status` clean (lanet_core/jupyter_hooks.py; README "Exploring the study in JupyterLab")
$(SAVE_HOOK): lanet_core/jupyter_hooks.py $(STAMP)
	@$(PY) -m lanet_core.jupyter_hooks install && touch $@

## make test: the whole suite on CPU (unit, integration when data is present, smoke study), one worker per
## core (pytest-xdist; a test file stays on one worker, so the smoke study's tests share their records)
test: install browser slurm
	$(PY) -m pytest -q -n auto --dist loadfile

## make browser: Debian's Chromium for the JupyterLab browser test, where it can be installed (root + apt-get);
## elsewhere that test skips and says why. Playwright drives it through executable_path (no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 && \
	  echo "installed chromium"; } || echo "chromium not installed here: the browser test will skip"

## make slurm: Debian's slurm-wlm and munge for the single-node SLURM test (tests/test_slurm.py), where they can be
## installed (root + apt-get); the test starts private daemons in a temp folder. Elsewhere it skips and says why.
slurm:
	@command -v slurmctld >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) >/dev/null 2>&1 && \
	  echo "installed slurm-wlm and munge"; } || echo "slurm-wlm not installed here: the SLURM test will skip"

## make test-fast: unit tests only (no papermill smoke study)
test-fast: install
	$(PY) -m pytest -q -n auto --dist loadfile -m "not smoke"

## make study: the main job
study: install
	$(LANET) study --profile $(PROFILE)

smoke: install
	$(LANET) study --profile smoke

## make figures: re-render every table and figure from run records, no training
figures: install
	$(LANET) study --profile $(PROFILE) --render-only

## make lab: JupyterLab with the project's registered kernel ("lanet"); notebooks/00_explorer is the per-image explorer.
## The study's notebooks render the committed cpu results when run as they are (profile cpu, train False).
lab: install
	$(VENV)/bin/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

## make sync: regenerate the paired .ipynb from the reviewed .py sources, stripped of outputs
sync: install
	$(VENV)/bin/jupytext --quiet --to ipynb --update-metadata '{"jupytext": {"formats": "ipynb,py:percent"}}' notebooks/*.py
	$(VENV)/bin/nbstripout notebooks/*.ipynb

lint: install
	$(VENV)/bin/nbstripout --verify notebooks/*.ipynb

clean-cache:
	rm -rf $${LANET_CACHE_DIR:-$$HOME/.cache/lanet}
