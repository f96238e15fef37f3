# The two commands: `make demo` runs the runbook scenarios against the lab, `make test` runs everything.
# Both bootstrap .venv/ from a fresh clone with only python3 and the package registry.
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
COLLECTIONS := $(VENV)/collections

.PHONY: venv demo test sanity lint galaxy pytest clean

$(STAMP): requirements.txt requirements-dev.txt lab/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e ./lab
	mkdir -p $(COLLECTIONS)/ansible_collections/alexandria
	ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/alexandria/ee
	echo "$(COLLECTIONS)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/alexandria_ee_collections.pth"
	touch $@

venv: $(STAMP)

demo: venv
	$(BIN)/python scripts/demo.py

test: venv
	bash scripts/test.sh

sanity: venv
	bash scripts/test.sh sanity

lint: venv
	bash scripts/test.sh lint

galaxy: venv
	bash scripts/test.sh galaxy

pytest: venv
	bash scripts/test.sh pytest

clean:
	rm -rf $(VENV) .build .lab
