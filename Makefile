# featurize-images: the commands people run. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed

# Offline ImageNet weights: when ../shared/keras exists and KERAS_HOME is unset, use it
# (the same Keras `imagenet` code path, served from that cache). Online machines without
# it download the weights once into ~/.keras.
ifeq ($(origin KERAS_HOME), undefined)
  ifneq ($(wildcard ../shared/keras/models),)
    export KERAS_HOME := $(abspath ../shared/keras)
  endif
endif

# Spark's Python workers must use the venv's interpreter, not `python3` from PATH.
export PYSPARK_PYTHON        := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

SAMPLE    ?= build/sample
NEW_SAMPLE ?= build/sample-new
INPUT     ?= $(SAMPLE)
OUTPUT    ?= runs/local
WEIGHTS   ?= imagenet
JOB_ARGS  ?=
TRAIN_ARGS ?=
RUN       ?= $(OUTPUT)
# predict-step defaults of run-local: new digits for the sample, else INPUT itself
PREDICT_INPUT ?= $(if $(filter $(SAMPLE),$(INPUT)),$(NEW_SAMPLE),$(INPUT))
PREDICT_OUTPUT ?= $(OUTPUT)-predictions
PREDICT_ARGS ?=
PYTEST_ARGS ?=
SUBMIT    := $(VENV)/bin/spark-submit --master "local[*]" --driver-memory 4g --conf spark.log.level=WARN

BENCH_N   ?= 5000
BENCH_ARGS ?=

.PHONY: help install sample run-local featurize train predict report test bench bench-levers clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: INPUT=$(INPUT) OUTPUT=$(OUTPUT) WEIGHTS=$(WEIGHTS) KERAS_HOME=$(KERAS_HOME)"

install: $(STAMP) ## create .venv/ and install the package with pinned local+test extras

$(STAMP): setup.py constraints.txt
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[local,test]"
	@touch $@

$(SAMPLE)/.done: $(STAMP) featurize/sample.py
	rm -rf $(SAMPLE)
	$(PY) -m featurize.sample $(SAMPLE)
	@touch $@

$(NEW_SAMPLE)/.done: $(STAMP) featurize/sample.py
	rm -rf $(NEW_SAMPLE)
	$(PY) -m featurize.sample $(NEW_SAMPLE) --per-class 5 --offset 60
	@touch $@

sample: $(SAMPLE)/.done $(NEW_SAMPLE)/.done ## render the embedded sample (sklearn digits -> PNG folders)

run-local: $(STAMP) $(if $(filter $(SAMPLE),$(INPUT)),$(SAMPLE)/.done $(NEW_SAMPLE)/.done) ## featurize -> train -> predict on local Spark (default: the embedded sample)
	$(SUBMIT) jobs/featurize_images.py --input "$(INPUT)" --output "$(OUTPUT)" \
	  --weights "$(WEIGHTS)" --overwrite $(JOB_ARGS)
	$(SUBMIT) jobs/train_classifier.py --run "$(OUTPUT)" $(TRAIN_ARGS)
	$(SUBMIT) jobs/predict_images.py --run "$(OUTPUT)" --input "$(PREDICT_INPUT)" \
	  --output "$(PREDICT_OUTPUT)" --overwrite
	@echo
	@$(PY) -m featurize.summary "$(OUTPUT)" --predictions "$(PREDICT_OUTPUT)"

featurize: $(STAMP) ## featurize INPUT into OUTPUT only (WEIGHTS=, JOB_ARGS=)
	$(SUBMIT) jobs/featurize_images.py --input "$(INPUT)" --output "$(OUTPUT)" \
	  --weights "$(WEIGHTS)" $(JOB_ARGS)
	@$(PY) -m featurize.summary "$(OUTPUT)"

train: $(STAMP) ## train the classifier of RUN (TRAIN_ARGS="--test-fraction 0.2 --split-file ...")
	$(SUBMIT) jobs/train_classifier.py --run "$(RUN)" $(TRAIN_ARGS)
	@$(PY) -m featurize.summary "$(RUN)"

predict: $(STAMP) ## predict INPUT with RUN's models into OUTPUT
	@[ "$(OUTPUT)" != "$(RUN)" ] || { echo "make predict: give OUTPUT=, a folder other than RUN" >&2; exit 2; }
	$(SUBMIT) jobs/predict_images.py --run "$(RUN)" --input "$(INPUT)" --output "$(OUTPUT)" \
	  $(PREDICT_ARGS)
	@$(PY) -m featurize.summary "$(RUN)" --predictions "$(OUTPUT)"

report: $(STAMP) ## write RUN/report/ (PNGs + index.html)
	$(PY) -m featurize.report "$(RUN)"

test: $(STAMP) ## run the test suite (pytest); "no tests collected" is a failure
	@rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench-levers: $(STAMP) ## each speed lever switched off in turn (BENCH_N=2000 recommended)
	$(PY) -m bench.levers --n $(BENCH_N) --weights "$(WEIGHTS)"

bench: $(STAMP) ## job vs the bare model in one process, same images (BENCH_N=5000); last line: ratio job/ceiling
	$(PY) -m bench.run --n $(BENCH_N) --weights "$(WEIGHTS)" $(BENCH_ARGS)

clean: ## remove build output, runs and the venv
	rm -rf build runs dist $(VENV) .pytest_cache spark-warehouse
