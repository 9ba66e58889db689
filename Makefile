# Two commands for a newcomer: `make up` runs the demo, `make test` runs every test.
# Each creates the virtual environment it needs in .venv first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: up test venv clean

up: $(INSTALLED)
	$(BIN)/python -m localmesh up

test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(INSTALLED)

# constraints.txt pins every package of the tree, so installs are repeatable.
$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .run .pytest_cache
