# Every target sets up .venv on first use; CI runs `make test` on a clean clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen

.PHONY: run test lint bench demo-model package package-test install-desktop clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch that lies on this machine's disk; never a CUDA build.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	env -u QT_QPA_PLATFORM $(BIN)/attention-explorer

lint: $(STAMP)
	$(BIN)/ruff check explorer tests benchmarks
	$(BIN)/ruff format --check explorer tests benchmarks
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_gui.py
	test ! -f benchmarks/bench_analysis.py || $(BIN)/python benchmarks/bench_analysis.py

demo-model: $(STAMP)
	$(BIN)/python -m explorer.demo.train --out resources/demo-model

# --- the standalone app: PyInstaller one-folder bundle (packaging/README.md) ----------------
# Built from its own venv with only the runtime dependencies and PyInstaller: PyInstaller's
# torch hook bundles whatever torch.testing._internal can import (transformers, pandas, ...).
PKG_VENV := .venv-package
PKG_BIN := $(PKG_VENV)/bin
PKG_STAMP := $(PKG_VENV)/.installed
APP_EXE := dist/AttentionExplorer/AttentionExplorer
PKG_SOURCES = $(shell find explorer resources packaging -type f -not -path '*/__pycache__/*')
BUILD_APP = $(PKG_BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist \
	--workpath build/pyinstaller packaging/attention-explorer.spec \
	&& touch $(APP_EXE) && du -sh dist/AttentionExplorer
# make install-desktop: the menu entry starts the bundle when it is built, else the venv's app
APP_CMD ?= $(abspath $(if $(wildcard $(APP_EXE)),$(APP_EXE),$(BIN)/attention-explorer))
DATA_HOME ?= $(or $(XDG_DATA_HOME),$(HOME)/.local/share)
ICON_SIZES := 16 24 32 48 64 128 256 512

$(PKG_STAMP): pyproject.toml
	test -x $(PKG_BIN)/python || $(PY) -m venv $(PKG_VENV)
	$(PKG_BIN)/pip install -q --upgrade pip
	# The CPU build of torch that lies on this machine's disk; never a CUDA build.
	$(PKG_BIN)/pip install -q "torch==2.13.0"
	$(PKG_BIN)/pip install -q -e . "pyinstaller==6.22.3"
	touch $(PKG_STAMP)

package: $(PKG_STAMP)
	$(BUILD_APP)

$(APP_EXE): $(PKG_STAMP) $(PKG_SOURCES)
	$(BUILD_APP)

# the self-test from the built folder, in an environment without the venv (no Python on PATH)
package-test: $(APP_EXE)
	env -i HOME="$(HOME)" PATH=/usr/bin:/bin LANG=C.UTF-8 $(APP_EXE) --self-test

install-desktop:
	for s in $(ICON_SIZES); do install -D -m 644 resources/icons/attention-explorer-$$s.png \
		"$(DATA_HOME)/icons/hicolor/$${s}x$${s}/apps/attention-explorer.png" || exit 1; done
	install -D -m 644 resources/icons/attention-explorer.svg \
		"$(DATA_HOME)/icons/hicolor/scalable/apps/attention-explorer.svg"
	mkdir -p "$(DATA_HOME)/applications"
	sed 's|@EXEC@|$(APP_CMD)|g' packaging/attention-explorer.desktop \
		> "$(DATA_HOME)/applications/attention-explorer.desktop"
	if command -v update-desktop-database >/dev/null; then \
		update-desktop-database -q "$(DATA_HOME)/applications"; fi
	touch "$(DATA_HOME)/icons/hicolor"  # menus notice new icons; refresh a cache if there is one
	if test -f "$(DATA_HOME)/icons/hicolor/icon-theme.cache"; then \
		gtk-update-icon-cache -q -t "$(DATA_HOME)/icons/hicolor" || true; fi
	@echo "installed $(DATA_HOME)/applications/attention-explorer.desktop, starting $(APP_CMD)"

clean:
	rm -rf $(VENV) .venv-package build dist .pytest_cache
