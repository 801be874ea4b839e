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
INPUT     ?= $(SAMPLE)
OUTPUT    ?= runs/local
WEIGHTS   ?= imagenet
JOB_ARGS  ?=
PYTEST_ARGS ?=

.PHONY: help install sample run-local test clean

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

sample: $(SAMPLE)/.done ## render the embedded sample (sklearn digits -> PNG folders)

run-local: $(STAMP) $(if $(filter $(SAMPLE),$(INPUT)),$(SAMPLE)/.done) ## featurize INPUT into OUTPUT on local Spark (default: the sample)
	$(VENV)/bin/spark-submit --master "local[*]" --driver-memory 4g --conf spark.log.level=WARN \
	  jobs/featurize_images.py --input "$(INPUT)" --output "$(OUTPUT)" \
	  --weights "$(WEIGHTS)" --overwrite $(JOB_ARGS)
	@echo
	@$(PY) -m featurize.summary "$(OUTPUT)"

test: $(STAMP) ## run the test suite (pytest); "no tests collected" is a failure
	@rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

clean: ## remove build output, runs and the venv
	rm -rf build runs dist $(VENV) .pytest_cache spark-warehouse
