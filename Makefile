# Two commands set up a fresh machine and run everything:
#   make demo   # install, train the seed-004 MNIST autoencoder on the embedded sample, evaluate it
#   make test   # install, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
DEMO := demo

.PHONY: install demo test bench clean factorized-ladder

# The bmshj2017-factorized ladder: quality 3 from scratch on the wallpapers of PHOTOS, then on
# those plus the photos tools/debian_photos.py gathers (MIXED), then each other quality
# fine-tuned from its neighbour (q3 -> q2 -> q1, q3 -> q4 -> q5 -> q6) on MIXED.
PHOTOS ?= ../shared/data/photos-train
RUNS ?= workdirs
MIXED ?= $(RUNS)/photos-mixed
BASE_STEPS ?= 8000
MIXED_STEPS ?= 4500
TUNE_STEPS ?= 1000
LADDER_FLAGS ?= --config.data.crop=128 --config.model.features=64 --config.model.latent_channels=128 \
  --config.learning_rate=5e-4 --config.checkpoint_every=500 --config.log_every=200

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

$(MIXED):
	$(PY) tools/debian_photos.py $(MIXED).tmp && cp $(PHOTOS)/*.png $(MIXED).tmp/ && mv $(MIXED).tmp $(MIXED)

factorized-ladder: $(STAMP) $(MIXED)
	$(PY) train.py --config configs/factorized_q3.py --workdir $(RUNS)/fq3 $(LADDER_FLAGS) \
	  --config.data.train=folder:$(PHOTOS) --config.num_steps=$(BASE_STEPS) --config.lr_decay_at=0.85
	$(PY) train.py --config configs/factorized_q3.py --workdir $(RUNS)/fq3m $(LADDER_FLAGS) \
	  --config.data.train=folder:$(MIXED) --config.num_steps=$(MIXED_STEPS) --config.lr_decay_at=0.7 \
	  --config.init_from=$(RUNS)/fq3
	for step in 3m:2 2:1 3m:4 4:5 5:6; do from=$${step%:*}; q=$${step#*:}; \
	  $(PY) train.py --config configs/factorized_q$$q.py --workdir $(RUNS)/fq$$q $(LADDER_FLAGS) \
	    --config.data.train=folder:$(MIXED) --config.num_steps=$(TUNE_STEPS) --config.lr_decay_at=0.6 \
	    --config.init_from=$(RUNS)/fq$$from || exit 1; \
	done
	for q in 1 2 3m 4 5 6; do $(PY) -m jaxcodec export $(RUNS)/fq$$q bmshj2017-factorized-q$${q%m} \
	  --description "Balle et al. 2017 factorized prior, N=64 M=128, quality $${q%m}"; done

clean:
	rm -rf $(DEMO) .pytest_cache
