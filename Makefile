# cnnviz — two commands do all set-up on a fresh machine:
#   make run    opens the app on the bundled sample image and demo model
#   make test   runs the whole test suite headless
# Both create .venv with the machine's python3 and install the package (editable, with the
# test extra) only when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test lint-imports bench screenshots package clean check-gui-libs

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Qt's xcb plugin needs system libraries; install them when we can (root + apt), else name them.
check-gui-libs:
	@if [ "$$(uname)" = "Linux" ] && [ -z "$$QT_QPA_PLATFORM" ]; then \
	  missing=$$($(PYTHON) -c "import sys; sys.path.insert(0, '.'); from cnnviz.qt_deps import missing_xcb_packages as m; print(' '.join(m()))"); \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	      echo "installing Qt's X11 libraries: $$missing"; \
	      (apt-get install -y -qq $$missing >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq $$missing)) ; \
	    else \
	      echo "Qt needs these system libraries: $$missing"; \
	      echo "install them with: sudo apt-get install -y $$missing"; exit 1; \
	    fi; \
	  fi; \
	fi

run: $(STAMP) check-gui-libs
	$(VENV)/bin/cnnviz

# tests/test_layering.py runs the import-linter contracts (pyproject.toml) as part of the suite
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

# the layering alone: core imports no Qt; cli > commands > bench/selftest > qt > core
lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache pyproject.toml

bench: $(STAMP)
	$(VENV)/bin/cnnviz bench

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screenshots.py
	QT_QPA_PLATFORM=offscreen $(PY) scripts/inspector_screenshots.py
	QT_QPA_PLATFORM=offscreen $(PY) scripts/featureviz_screenshots.py
	PYTHON=$(PY) docs/screenshots/classroom.sh  # the classroom pictures: the real window under Xvfb

package: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,package]'
	$(PY) -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/cnnviz.spec
	QT_QPA_PLATFORM=offscreen dist/cnnviz/cnnviz --self-test

clean:
	rm -rf build dist .pytest_cache
