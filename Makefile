# Two commands set up a fresh machine and run everything:
#   make demo   # install, train the seed-004 MNIST autoencoder on the embedded sample, evaluate it
#   make test   # install, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
DEMO := demo

.PHONY: install demo test bench clean factorized-ladder factorized-ladder-gpu

# The bmshj2017-factorized ladder: quality 3 from scratch on the wallpapers of PHOTOS, then on
# those plus the photos tools/debian_photos.py gathers (MIXED), then LONG_STEPS more on MIXED
# (fq3n); each other quality is fine-tuned from its neighbour (q3 -> q2 -> q1,
# q3 -> q4 -> ... -> q7) on MIXED, starting with the neighbour's latent rescaled by sqrt(2)
# (up) or 1/sqrt(2) (down): model.init_latent_scale, jaxcodec.models.factorized.rescale_latents.
# Then quality 7 trains TOP_STEPS more on patches cut from squares up to DOWNSCALE times larger
# (data.downscale: denser detail, as in the photos it is evaluated on; fq7d), and every other
# quality is derived from it again (q7d -> q6d -> ... -> q1d), REFRESH_STEPS each, quality 7
# once more from q6d (q7e: 9% lower training loss than q7d), quality 8 from q7e (q8e) and
# quality 9 (λ = 0.36, one rung above CompressAI's ladder) from q8e. A third pass trains q7e,
# q8e, q6d, q9e, q5d, q4d and q3d REFRESH_STEPS more each (q7f, ...: 1-4% lower training
# loss), a fourth q9f, q8f, q7f and q6f (q9g, ...). Last, every rung's encoder alone is
# fine-tuned for ENCODER_STEPS with the decoder fed round(y) (model.trainable=analysis,
# model.quantizer=ste; Guo et al. 2021) from q1d, q2d, q3f-q5f and q6g-q9g (fq1h ... fq9h).
#
# Then, on one GPU (make factorized-ladder-gpu, about 20 minutes on an H200), the nine rungs
# train side by side, one process each, at batch GPU_BATCH on quality-95 JPEG copies of MIXED
# (tools/jpeg_copies.py): GPU_STEPS from fq1h, fq4h, fq5h, fq6h and fq9h (fq*m), GPU_STEPS
# for every rung from its fq*m or else its fq*h (fq*n), and last GPU_ENCODER_STEPS of the
# encoder alone, as above (fq*p). fq1p ... fq9p ship.
PHOTOS ?= ../shared/data/photos-train
RUNS ?= workdirs
MIXED ?= $(RUNS)/photos-mixed
BASE_STEPS ?= 8000
MIXED_STEPS ?= 4500
LONG_STEPS ?= 6000
TUNE_STEPS ?= 2000
TOP_STEPS ?= 7000
REFRESH_STEPS ?= 2500
ENCODER_STEPS ?= 600
ENCODER_LR ?= 2e-4
DOWNSCALE ?= 3
MIXED_JPEG ?= $(RUNS)/photos-mixed-jpeg
GPU_BATCH ?= 32
GPU_STEPS ?= 6000
GPU_ENCODER_STEPS ?= 1500
LADDER_FLAGS ?= --config.data.crop=128 --config.model.features=64 --config.model.latent_channels=128 \
  --config.learning_rate=5e-4 --config.checkpoint_every=500 --config.log_every=200

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
	$(PY) train.py --config configs/factorized_q3.py --workdir $(RUNS)/fq3 $(LADDER_FLAGS) \
	  --config.data.train=folder:$(PHOTOS) --config.num_steps=$(BASE_STEPS) --config.lr_decay_at=0.85
	$(PY) train.py --config configs/factorized_q3.py --workdir $(RUNS)/fq3m $(LADDER_FLAGS) \
	  --config.data.train=folder:$(MIXED) --config.num_steps=$(MIXED_STEPS) --config.lr_decay_at=0.7 \
	  --config.init_from=$(RUNS)/fq3
	$(PY) train.py --config configs/factorized_q3.py --workdir $(RUNS)/fq3n $(LADDER_FLAGS) \
	  --config.data.train=folder:$(MIXED) --config.num_steps=$(LONG_STEPS) --config.lr_decay_at=0.7 \
	  --config.init_from=$(RUNS)/fq3m
	for step in 3n:4:1.41421356 4:5:1.41421356 5:6:1.41421356 3n:2:0.70710678 2:1:0.70710678 \
	    6:7:1.41421356; do from=$${step%%:*}; rest=$${step#*:}; q=$${rest%%:*}; scale=$${rest#*:}; \
	  $(PY) train.py --config configs/factorized_q$$q.py --workdir $(RUNS)/fq$$q $(LADDER_FLAGS) \
	    --config.data.train=folder:$(MIXED) --config.num_steps=$(TUNE_STEPS) --config.lr_decay_at=0.6 \
	    --config.init_from=$(RUNS)/fq$$from --config.model.init_latent_scale=$$scale || exit 1; \
	done
	$(PY) train.py --config configs/factorized_q7.py --workdir $(RUNS)/fq7d $(LADDER_FLAGS) \
	  --config.data.train=folder:$(MIXED) --config.data.downscale=$(DOWNSCALE) --config.num_steps=$(TOP_STEPS) \
	  --config.lr_decay_at=0.7 --config.init_from=$(RUNS)/fq7
	for step in 7d:6d:0.70710678 6d:5d:0.70710678 5d:4d:0.70710678 4d:3d:0.70710678 \
	    3d:2d:0.70710678 2d:1d:0.70710678 6d:7e:1.41421356 7e:8e:1.41421356 8e:9e:1.41421356; do \
	  from=$${step%%:*}; rest=$${step#*:}; q=$${rest%%:*}; scale=$${rest#*:}; \
	  $(PY) train.py --config configs/factorized_q$${q%[de]}.py --workdir $(RUNS)/fq$$q $(LADDER_FLAGS) \
	    --config.data.train=folder:$(MIXED) --config.data.downscale=$(DOWNSCALE) --config.num_steps=$(REFRESH_STEPS) \
	    --config.lr_decay_at=0.6 --config.init_from=$(RUNS)/fq$$from --config.model.init_latent_scale=$$scale || exit 1; \
	done
	for step in 7e:7f 8e:8f 6d:6f 9e:9f 5d:5f 4d:4f 3d:3f; do from=$${step%%:*}; q=$${step#*:}; \
	  $(PY) train.py --config configs/factorized_q$${q%f}.py --workdir $(RUNS)/fq$$q $(LADDER_FLAGS) \
	    --config.data.train=folder:$(MIXED) --config.data.downscale=$(DOWNSCALE) --config.num_steps=$(REFRESH_STEPS) \
	    --config.lr_decay_at=0.6 --config.init_from=$(RUNS)/fq$$from || exit 1; \
	done
	for step in 9f:9g 8f:8g 7f:7g 6f:6g; do from=$${step%%:*}; q=$${step#*:}; \
	  $(PY) train.py --config configs/factorized_q$${q%g}.py --workdir $(RUNS)/fq$$q $(LADDER_FLAGS) \
	    --config.data.train=folder:$(MIXED) --config.data.downscale=$(DOWNSCALE) --config.num_steps=$(REFRESH_STEPS) \
	    --config.lr_decay_at=0.6 --config.init_from=$(RUNS)/fq$$from || exit 1; \
	done
	for step in 1d:1h 2d:2h 3f:3h 4f:4h 5f:5h 6g:6h 7g:7h 8g:8h 9g:9h; do from=$${step%%:*}; q=$${step#*:}; \
	  $(PY) train.py --config configs/factorized_q$${q%h}.py --workdir $(RUNS)/fq$$q $(LADDER_FLAGS) \
	    --config.learning_rate=$(ENCODER_LR) --config.data.train=folder:$(MIXED) --config.data.downscale=$(DOWNSCALE) \
	    --config.num_steps=$(ENCODER_STEPS) --config.lr_decay_at=0.6 --config.checkpoint_every=300 \
	    --config.model.quantizer=ste --config.model.trainable=analysis --config.init_from=$(RUNS)/fq$$from || exit 1; \
	done

$(MIXED_JPEG): $(MIXED)
	$(PY) tools/jpeg_copies.py $(MIXED) $(MIXED_JPEG) --quality 95

# $(call side_by_side,FROM:TO ...,FLAGS): one training process per rung, all at once.
side_by_side = pids=; for step in $(1); do from=$${step%%:*}; q=$${step\#*:}; \
	  XLA_PYTHON_CLIENT_MEM_FRACTION=0.09 $(PY) train.py --config configs/factorized_q$${q%?}.py \
	    --workdir $(RUNS)/fq$$q $(LADDER_FLAGS) --config.batch_size=$(GPU_BATCH) \
	    --config.data.train=folder:$(MIXED_JPEG) --config.data.downscale=$(DOWNSCALE) \
	    --config.lr_decay_at=0.6 --config.init_from=$(RUNS)/fq$$from $(2) > $(RUNS)/fq$$q.log 2>&1 & \
	  pids="$$pids $$!"; done; for p in $$pids; do wait $$p || exit 1; done

factorized-ladder-gpu: $(STAMP) $(MIXED_JPEG)
	$(call side_by_side,1h:1m 4h:4m 5h:5m 6h:6m 9h:9m,--config.num_steps=$(GPU_STEPS))
	$(call side_by_side,1m:1n 2h:2n 3h:3n 4m:4n 5m:5n 6m:6n 7h:7n 8h:8n 9m:9n,--config.num_steps=$(GPU_STEPS))
	$(call side_by_side,1n:1p 2n:2p 3n:3p 4n:4p 5n:5p 6n:6p 7n:7p 8n:8p 9n:9p,--config.num_steps=$(GPU_ENCODER_STEPS) \
	  --config.learning_rate=$(ENCODER_LR) --config.model.quantizer=ste --config.model.trainable=analysis)
	for q in 1 2 3 4 5 6 7 8 9; do $(PY) -m jaxcodec export $(RUNS)/fq$${q}p bmshj2017-factorized-q$$q \
	  --description "Balle et al. 2017 factorized prior, N=64 M=128, quality $$q"; done

clean:
	rm -rf $(DEMO) .pytest_cache
