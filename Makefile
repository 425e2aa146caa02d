# twin — two commands: `make run` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install system-deps warm run test test-quick bench clean vendor-js

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Debian packages the tests use: Chromium (HTML report and 3D page in a headless browser) and
# Mesa's EGL (off-screen 3D rendering). Installed with apt-get when missing and we are root;
# otherwise the tests that need them are skipped with the reason.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "system-deps: installing Debian's chromium for the browser tests (apt-get, a minute or two)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "system-deps: could not install chromium; the browser tests will be skipped"; \
	  else echo "system-deps: chromium missing and not installable here; the browser tests will be skipped"; fi; \
	fi
	@if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "system-deps: installing Mesa EGL for off-screen 3D rendering (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 \
	      libgl1-mesa-dri >/dev/null) || echo "system-deps: could not install Mesa EGL; 3D tests will be skipped"; \
	  else echo "system-deps: Mesa EGL missing and not installable here; 3D tests will be skipped"; fi; \
	fi

# numba's cache of the compiled kernels (in __pycache__ beside each source): filled once per change of a file that
# defines kernels or that they import (the files whose change makes a cached kernel stale, twin.jit.kernel_sources),
# so that every later process (each test's too) loads them instead of compiling for a minute.
KERNEL_SRC := $(shell $(PY) -m twin.warm --sources 2>/dev/null) $(wildcard twin/data/warm/*)
WARM := twin/__pycache__/kernels.warm
warm: $(WARM)

$(WARM): $(STAMP) $(KERNEL_SRC)
	$(PY) -m twin.warm
	@mkdir -p $(dir $(WARM)) && touch $(WARM)

run: install warm
	$(PY) run_sim.py

test: install system-deps warm
	$(PY) -m pytest -q -n auto --dist loadfile

test-quick: install system-deps warm
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow"

bench: install warm
	$(PY) benchmarks/bench_native.py

# The dashboard's JavaScript (twin/web/static/vendor/): built files from npm at pinned versions, with their
# licences, shipped as package data so that the page works offline and `pip install` users need no npm.
MAPLIBRE_VERSION ?= 5.6.0
UPLOT_VERSION    ?= 1.6.32
SWAGGER_VERSION  ?= 5.35.0
VENDOR := twin/web/static/vendor
vendor-js:
	@tmp=$$(mktemp -d) && cd $$tmp && npm init -y >/dev/null && \
	  npm install --no-audit --no-fund --silent maplibre-gl@$(MAPLIBRE_VERSION) uplot@$(UPLOT_VERSION) \
	    swagger-ui-dist@$(SWAGGER_VERSION) && cd - >/dev/null && mkdir -p $(VENDOR) && \
	  cp $$tmp/node_modules/maplibre-gl/dist/maplibre-gl.js $$tmp/node_modules/maplibre-gl/dist/maplibre-gl.css $(VENDOR)/ && \
	  cp $$tmp/node_modules/maplibre-gl/LICENSE.txt $(VENDOR)/maplibre-gl.LICENSE.txt && \
	  cp $$tmp/node_modules/uplot/dist/uPlot.iife.min.js $$tmp/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/ && \
	  cp $$tmp/node_modules/uplot/LICENSE $(VENDOR)/uPlot.LICENSE.txt && \
	  cp $$tmp/node_modules/swagger-ui-dist/swagger-ui-bundle.js $$tmp/node_modules/swagger-ui-dist/swagger-ui.css $(VENDOR)/ && \
	  cp $$tmp/node_modules/swagger-ui-dist/LICENSE $(VENDOR)/swagger-ui.LICENSE.txt && \
	  printf 'maplibre-gl %s\nuplot %s\nswagger-ui-dist %s\n' $(MAPLIBRE_VERSION) $(UPLOT_VERSION) $(SWAGGER_VERSION) \
	    > $(VENDOR)/VERSIONS && rm -rf $$tmp && echo "vendor-js: refreshed $(VENDOR)"

clean:
	rm -rf results .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
