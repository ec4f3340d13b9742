# Two commands set up a fresh machine and run everything:
#   make demo   # install, train the seed-004 MNIST autoencoder on the embedded sample, evaluate it
#   make test   # install, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
DEMO := demo

.PHONY: install demo test bench clean factorized-ladder factorized-ladder-gpu

# The bmshj2017-factorized ladder, stage by stage: configs/ladders/bmshj2017_factorized.py, run by
# tools/ladder.py (make factorized-ladder on the CPUs, then make factorized-ladder-gpu on one GPU).
# Finished stages are skipped, so the same command resumes it. LADDER_ARGS adds options:
# "--dry-run", "--from fq7d", "--only fq4,fq5", "--set tune_steps=500", "-- --config.log_every=50".
PHOTOS ?= ../shared/data/photos-train
RUNS ?= workdirs
MIXED ?= $(RUNS)/photos-mixed
MIXED_JPEG ?= $(RUNS)/photos-mixed-jpeg
LADDER_ARGS ?=
LADDER = $(PY) tools/ladder.py configs/ladders/bmshj2017_factorized.py --set photos=$(PHOTOS) --set runs=$(RUNS) \
  --set mixed=$(MIXED) --set mixed_jpeg=$(MIXED_JPEG)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) train.py --config configs/mnist_conv_ae.py --workdir $(DEMO)/mnist_conv_ae --config.num_steps=1500
	$(PY) eval.py --data sample:mnist --codecs $(DEMO)/mnist_conv_ae,pca28,jpeg,webp,kmeans4 \
	  --fit_data sample:mnist --limit 500 --out $(DEMO)/report
	@echo "report: $(DEMO)/report/table.md, rd.png, grid.png"

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

$(MIXED):
	$(PY) tools/debian_photos.py $(MIXED).tmp && cp $(PHOTOS)/*.png $(MIXED).tmp/ && mv $(MIXED).tmp $(MIXED)

factorized-ladder: $(STAMP) $(MIXED)
	$(LADDER) --part cpu $(LADDER_ARGS)

$(MIXED_JPEG): $(MIXED)
	$(PY) tools/jpeg_copies.py $(MIXED) $(MIXED_JPEG) --quality 95

factorized-ladder-gpu: $(STAMP) $(MIXED_JPEG)
	$(LADDER) --part gpu $(LADDER_ARGS)

clean:
	rm -rf $(DEMO) .pytest_cache
