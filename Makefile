# Two commands set up a fresh machine and run everything:
#   make demo   # install, train the seed-004 MNIST autoencoder on the embedded sample, evaluate it
#   make test   # install, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
DEMO := demo

.PHONY: install demo test bench clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
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

clean:
	rm -rf $(DEMO) .pytest_cache
