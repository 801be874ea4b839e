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
INDEX_ARGS ?=
RUN       ?= $(OUTPUT)
# predict-step defaults of run-local: new digits for the sample, else INPUT itself
PREDICT_INPUT ?= $(if $(filter $(SAMPLE),$(INPUT)),$(NEW_SAMPLE),$(INPUT))
PREDICT_OUTPUT ?= $(OUTPUT)-predictions
PREDICT_ARGS ?=
IMAGE     ?=
PREDICT_ONE_ARGS ?=
CLUSTER_ARGS ?=
PORT      ?= 8000
HOST      ?= 127.0.0.1
SERVE_ARGS ?=
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)
PYTEST_ARGS ?=
SUBMIT    := $(VENV)/bin/spark-submit --master "local[*]" --driver-memory 4g --conf spark.log.level=WARN

# The Airflow DAG's own venv: Airflow pins its own dependency set (dags/constraints.txt)
DAG_VENV  ?= .venv-dag
DAG_PY    := $(DAG_VENV)/bin/python
DAG_STAMP := $(DAG_VENV)/.installed

BENCH_N   ?= 5000
PEER_N    ?= 3000
PEERS     ?= spark,daft,ray
SCALE_N   ?= 10000,100000
PHOTOS_N  ?= 400
PHOTOS_ROUNDS ?= 3
INDEX_N   ?= 100000,1000000
INDEX_RUN_ROWS ?= 100000
BENCH_ARGS ?=

# --- EMR (python -m emr; docs/emr.md) ------------------------------------------------------
# One source of defaults: emr/settings.py and emr/requests.py. A variable reaches the CLI
# only when you set it (on the command line or in the environment); BUCKET is required by
# every AWS target. Variables: BUCKET PREFIX REGION PROFILE RELEASE_LABEL INSTANCE_TYPE
# MASTER_INSTANCE_TYPE CORE_COUNT TASK_COUNT SPOT TASK_MARKET SUBNET_ID KEY_NAME SERVICE_ROLE
# INSTANCE_PROFILE IDLE_TIMEOUT ROOT_VOLUME_GB EXECUTOR_CORES EXECUTOR_MEMORY ENGINE SSE SSE_KMS_KEY_ID
# CLUSTER_ID STEPS POLL DIST EMR_STATE
# DRY_RUN SKIP_PREFLIGHT
# (and INPUT INPUT_LIST OUTPUT WEIGHTS PREDICT_INPUT PREDICT_OUTPUT JOB_ARGS TRAIN_ARGS INDEX_ARGS for the steps).

q = '$(subst ','"'"',$(1))'
given = $(filter command line environment environment override override,$(origin $(1)))
# $(call opt,VAR,--flag): "--flag 'value'" when VAR was given a value, else nothing
opt = $(if $(and $(call given,$(1)),$($(1))),$(2) $(call q,$($(1))))
EMR       := $(PY) -m emr $(call opt,DIST,--dist) $(call opt,EMR_STATE,--state-dir) \
  $(call opt,PROFILE,--profile) $(call opt,REGION,--region)
EMR_SETTINGS = $(call opt,BUCKET,--bucket) $(call opt,PREFIX,--prefix) \
  $(call opt,RELEASE_LABEL,--release-label) $(call opt,INSTANCE_TYPE,--instance-type) \
  $(call opt,MASTER_INSTANCE_TYPE,--master-instance-type) $(call opt,CORE_COUNT,--core-count) \
  $(call opt,TASK_COUNT,--task-count) $(if $(filter 1 true yes,$(SPOT)),--spot) \
  $(call opt,TASK_MARKET,--task-market) \
  $(call opt,SUBNET_ID,--subnet-id) $(call opt,KEY_NAME,--key-name) \
  $(call opt,SERVICE_ROLE,--service-role) $(call opt,INSTANCE_PROFILE,--instance-profile) \
  $(call opt,IDLE_TIMEOUT,--idle-timeout) $(call opt,ROOT_VOLUME_GB,--root-volume-gb) \
  $(call opt,EXECUTOR_CORES,--executor-cores) \
  $(call opt,ENGINE,--engine) $(SSE_ARGS) \
  $(call opt,EXECUTOR_MEMORY,--executor-memory)
# --sse/--sse-kms-key-id of every job, here and in EMR's steps (docs/cli.md, "Encryption")
SSE_ARGS = $(call opt,SSE,--sse) $(call opt,SSE_KMS_KEY_ID,--sse-kms-key-id)
EMR_STEPS = $(call opt,INPUT,--input) $(call opt,INPUT_LIST,--input-list) $(EMR_JOB_ARGS)
EMR_JOB_ARGS = $(call opt,STEPS,--steps) $(call opt,WEIGHTS,--weights) $(call opt,OUTPUT,--output) \
  $(call opt,PREDICT_INPUT,--predict-input) $(call opt,PREDICT_OUTPUT,--predict-output) \
  $(if $(JOB_ARGS),--job-args=$(call q,$(JOB_ARGS))) $(if $(TRAIN_ARGS),--train-args=$(call q,$(TRAIN_ARGS))) \
  $(if $(INDEX_ARGS),--index-args=$(call q,$(INDEX_ARGS)))
EMR_CLUSTER = $(call opt,CLUSTER_ID,--cluster-id)
UPLOAD_FIRST = $(if $(DRY_RUN),,upload)
PREFLIGHT = $(if $(filter 1 true yes,$(SKIP_PREFLIGHT)),--skip-preflight)

.PHONY: help install sample run-local featurize train predict predict-one serve browser cluster-features index report test lint-imports bench bench-peer bench-one bench-levers bench-scale bench-photos bench-index clean
.PHONY: require-bucket package upload cluster submit wait status logs down emr-run estimate
.PHONY: jars emr-rehearse rehearsal-test fault-test iam-policy dag-test dag-package

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: INPUT=$(INPUT) OUTPUT=$(OUTPUT) WEIGHTS=$(WEIGHTS) KERAS_HOME=$(KERAS_HOME)"

install: $(STAMP) ## create .venv/ and install the package with pinned local+test extras

$(STAMP): setup.py constraints.txt
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[local,serve,test]"
	@touch $@

$(SAMPLE)/.done: $(STAMP) featurize/inputs/sample.py
	rm -rf $(SAMPLE)
	$(PY) -m featurize.inputs.sample $(SAMPLE)
	@touch $@

$(NEW_SAMPLE)/.done: $(STAMP) featurize/inputs/sample.py
	rm -rf $(NEW_SAMPLE)
	$(PY) -m featurize.inputs.sample $(NEW_SAMPLE) --per-class 5 --offset 60
	@touch $@

sample: $(SAMPLE)/.done $(NEW_SAMPLE)/.done ## render the embedded sample (sklearn digits -> PNG folders)

run-local: $(STAMP) $(if $(filter $(SAMPLE),$(INPUT)),$(SAMPLE)/.done $(NEW_SAMPLE)/.done) ## featurize -> train -> predict on local Spark (default: the embedded sample)
	$(SUBMIT) jobs/featurize_images.py --input "$(INPUT)" --output "$(OUTPUT)" \
	  --weights "$(WEIGHTS)" --overwrite $(SSE_ARGS) $(JOB_ARGS)
	$(SUBMIT) jobs/train_classifier.py --run "$(OUTPUT)" $(SSE_ARGS) $(TRAIN_ARGS)
	$(SUBMIT) jobs/predict_images.py --run "$(OUTPUT)" --input "$(PREDICT_INPUT)" \
	  --output "$(PREDICT_OUTPUT)" --overwrite $(SSE_ARGS)
	@echo
	@$(PY) -m featurize.review.summary "$(OUTPUT)" --predictions "$(PREDICT_OUTPUT)"

featurize: $(STAMP) ## featurize INPUT into OUTPUT only (WEIGHTS=, INPUT_LIST=, JOB_ARGS=)
	$(SUBMIT) jobs/featurize_images.py --input "$(INPUT)" --output "$(OUTPUT)" \
	  --weights "$(WEIGHTS)" $(call opt,INPUT_LIST,--input-list) $(SSE_ARGS) $(JOB_ARGS)
	@$(PY) -m featurize.review.summary "$(OUTPUT)"

train: $(STAMP) ## train the classifier of RUN (TRAIN_ARGS="--test-fraction 0.2 --split-file ...")
	$(SUBMIT) jobs/train_classifier.py --run "$(RUN)" $(SSE_ARGS) $(TRAIN_ARGS)
	@$(PY) -m featurize.review.summary "$(RUN)"

predict: $(STAMP) ## predict INPUT with RUN's models into OUTPUT
	@[ "$(OUTPUT)" != "$(RUN)" ] || { echo "make predict: give OUTPUT=, a folder other than RUN" >&2; exit 2; }
	$(SUBMIT) jobs/predict_images.py --run "$(RUN)" --input "$(INPUT)" --output "$(OUTPUT)" \
	  $(SSE_ARGS) $(PREDICT_ARGS)
	@$(PY) -m featurize.review.summary "$(RUN)" --predictions "$(OUTPUT)"

predict-one: $(STAMP) ## one photo, no Spark: RUN's label + confidence for IMAGE= (files; PREDICT_ONE_ARGS="--json --top 3")
	@[ -n "$(IMAGE)" ] || { echo "make predict-one: give IMAGE=<image file(s)>, e.g. IMAGE=build/sample-new/3/3_060.png" >&2; exit 2; }
	@$(PY) -m featurize.photo.predict_one --run "$(RUN)" $(PREDICT_ONE_ARGS) $(IMAGE)

cluster-features: $(STAMP) ## KMeans on RUN's PCA features, k by silhouette (CLUSTER_ARGS="--k 10" or "--k-min 2 --k-max 20"); not EMR's `make cluster`
	$(SUBMIT) jobs/cluster_features.py --run "$(RUN)" $(SSE_ARGS) $(CLUSTER_ARGS)

index: $(STAMP) ## similar images: RUN/index/ (faiss), RUN/neighbours/, with INDEX_ARGS="--duplicates 0.95" RUN/duplicates/ (docs/search.md)
	$(SUBMIT) jobs/index_features.py --run "$(RUN)" $(SSE_ARGS) $(INDEX_ARGS)

serve: $(STAMP) ## web page + JSON API for one photo at a time with RUN's classifier (PORT=8000, HOST=127.0.0.1)
	$(PY) -m featurize.photo.serve --run "$(RUN)" --port "$(PORT)" --host "$(HOST)" $(SERVE_ARGS)

browser: ## the headless Chromium the page test drives (Debian's chromium + chromium-driver; apt-get when missing)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "chromium: $$(command -v chromium), chromedriver: $$(command -v chromedriver)"; \
	else \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; \
	fi

report: $(STAMP) ## write RUN/report/ (PNGs + index.html)
	$(PY) -m featurize.review.report "$(RUN)"

test: $(STAMP) lint-imports ## the import contracts, then the test suite (pytest); "no tests collected" is a failure
	@rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint-imports: $(STAMP) ## the direction of imports (.importlinter; docs/development.md, "The house by stage")
	$(VENV)/bin/lint-imports --no-cache --no-logo

bench-levers: $(STAMP) ## each speed lever switched off in turn (BENCH_N=2000 recommended)
	$(PY) -m bench.levers --n $(BENCH_N) --weights "$(WEIGHTS)"

bench: $(STAMP) ## job vs the bare model in one process, same images (BENCH_N=5000); last line: ratio job/ceiling
	$(PY) -m bench.run --n $(BENCH_N) --weights "$(WEIGHTS)" $(BENCH_ARGS)

bench-peer: $(STAMP) ## whole processes: the job vs pyspark predict_batch_udf, Daft and Ray Data (PEER_N=3000 thumbnails, or PEER_PHOTOS=400 phone photos; PEERS=spark,daft,ray); last line: ratio job/strongest peer
	$(PY) -m bench.peer --n $(PEER_N) $(if $(PEER_PHOTOS),--photos $(PEER_PHOTOS)) --peers "$(PEERS)" --weights "$(WEIGHTS)"

bench-scale: $(STAMP) ## driver cost by input size: N tiny non-images + 300 digits, first run and --resume (SCALE_N=10000,100000)
	$(PY) -m bench.scale --n $(SCALE_N) --weights "$(WEIGHTS)"

bench-index: $(STAMP) ## the similar-images index on synthetic features: recall@10 and one photo's query vs the exact index (INDEX_N=100000,1000000; INDEX_RUN_ROWS=100000: the job end to end)
	$(PY) -m bench.index --vectors $(INDEX_N) --run-rows $(INDEX_RUN_ROWS)

bench-photos: $(STAMP) ## phone-size photos (12 MP JPEGs made from the clothing set) vs the same at 448x336, and the bare model (PHOTOS_N=400, PHOTOS_ROUNDS=3: medians); last line: ratio phone/small
	$(PY) -m bench.photos --n $(PHOTOS_N) --rounds $(PHOTOS_ROUNDS) --weights "$(WEIGHTS)"

bench-one: $(STAMP) ## one photo: predict_one (start-up, per photo) vs a spark-submit predict of it (RUN=, IMAGES=)
	$(PY) -m bench.one_photo --run "$(RUN)" --images "$(or $(IMAGES),$(NEW_SAMPLE))"

require-bucket:
	@[ -n "$(BUCKET)" ] || { echo "make $(or $(MAKECMDGOALS),cluster): BUCKET is required: an S3 bucket you own, e.g. make $(or $(MAKECMDGOALS),cluster) BUCKET=my-bucket REGION=us-east-1" >&2; exit 2; }

package: $(STAMP) ## EMR: build dist/ (code zip, job entry points, bootstrap script + pins)
	$(EMR) package

upload: require-bucket package ## EMR: put dist/ and the weights (WEIGHTS=imagenet) under s3://BUCKET/PREFIX/
	$(EMR) upload $(EMR_SETTINGS) $(call opt,WEIGHTS,--weights)

cluster: require-bucket $(STAMP) $(UPLOAD_FIRST) ## EMR: upload, then start a cluster (BUCKET= INSTANCE_TYPE= CORE_COUNT= SPOT=1 DRY_RUN=1 ...)
	$(EMR) up $(EMR_SETTINGS) $(if $(DRY_RUN),--dry-run) $(PREFLIGHT)

submit: require-bucket $(STAMP) $(UPLOAD_FIRST) ## EMR: add steps (STEPS="featurize train" INPUT=s3://... OUTPUT=s3://...)
	$(EMR) submit $(EMR_SETTINGS) $(EMR_STEPS) $(EMR_CLUSTER) $(if $(DRY_RUN),--dry-run)

wait: $(STAMP) ## EMR: follow the submitted steps; on failure print the tail of stderr
	$(EMR) wait $(EMR_CLUSTER) $(call opt,POLL,--poll)

status: $(STAMP) ## EMR: the cluster and its steps
	$(EMR) status $(EMR_CLUSTER)

logs: $(STAMP) ## EMR: print the last step's stderr (STEP_ID=, LOG=stdout)
	$(EMR) logs $(EMR_CLUSTER) $(call opt,STEP_ID,--step-id) $(call opt,LOG,--file)

down: $(STAMP) ## EMR: terminate the cluster (and wait until it is gone)
	$(EMR) down $(EMR_CLUSTER)

emr-run: require-bucket $(STAMP) $(UPLOAD_FIRST) ## EMR: transient cluster that runs STEPS, waits, terminates itself
	$(EMR) run $(EMR_SETTINGS) $(EMR_STEPS) $(if $(DRY_RUN),--dry-run) $(PREFLIGHT)
	$(if $(DRY_RUN),,$(EMR) wait $(call opt,POLL,--poll))

iam-policy: $(STAMP) ## EMR: the nodes' least-privilege IAM policy for INPUT/OUTPUT (offline; ROLE_NAME= also creates the role + instance profile)
	$(EMR) policy $(EMR_SETTINGS) $(EMR_STEPS) $(call opt,ROLE_NAME,--create-role)

estimate: $(STAMP) ## EMR: time and cost of featurizing INPUT=s3://... (INSTANCE_TYPE= CORE_COUNT= TASK_COUNT= PRICE_PER_HOUR= SPOT_PRICE_PER_HOUR= TARGET_MINUTES=)
	$(EMR) estimate --input $(call q,$(INPUT)) $(call opt,INSTANCE_TYPE,--instance-type) \
	  $(call opt,CORE_COUNT,--core-count) $(call opt,TASK_COUNT,--task-count) \
	  $(call opt,EXECUTOR_CORES,--executor-cores) $(call opt,EXECUTOR_MEMORY,--executor-memory) \
	  $(call opt,PRICE_PER_HOUR,--price-per-hour) $(call opt,SPOT_PRICE_PER_HOUR,--spot-price-per-hour) \
	  $(call opt,TARGET_MINUTES,--target-minutes)

# --- Rehearsal: the EMR steps on a local YARN against a moto S3 (docs/emr.md) --------------
OUT ?= runs/rehearsal
REHEARSE_INPUT = $(if $(call given,INPUT),$(INPUT),$(SAMPLE))

jars: $(STAMP) ## rehearsal: fetch its jars from Maven Central once (sha256-checked) into ~/.cache/featurize-images
	$(PY) -m emr jars

emr-rehearse: $(STAMP) package jars $(if $(call given,INPUT),,$(SAMPLE)/.done) ## EMR's steps on a local YARN + moto S3 (INPUT= folder or s3://, OUT=, STEPS=, JOB_ARGS=, NODES=, LOSE_NODE=, ...)
	$(EMR) rehearse $(EMR_SETTINGS) $(EMR_JOB_ARGS) \
	  --input $(call q,$(REHEARSE_INPUT)) --out $(call q,$(OUT)) \
	  $(call opt,INPUT_FROM,--input-from) $(call opt,PREDICT_FROM,--predict-from) \
	  $(call opt,NODE_MB,--node-mb) $(call opt,NODE_VCORES,--node-vcores) \
	  $(call opt,NODES,--nodes) $(call opt,LOSE_NODE,--lose-node) \
	  $(foreach k,$(DROP_CONF),--drop-conf $(k))
	@$(PY) -m featurize.review.summary $(call q,$(OUT)) $(if $(findstring predict,$(STEPS)),--predictions $(call q,$(OUT)-predictions))

integration-test: $(STAMP) ## the jobs as spark-submit processes, a real bootstrap install, all of Fruits-360 (marker integration; own CI step after make test)
	@rc=0; $(PY) -m pytest -m integration $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

fault-test: $(STAMP) ## lost executors on a local standalone cluster (marker fault; own CI step after make test)
	@rc=0; $(PY) -m pytest -m fault tests/test_fault.py $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

rehearsal-test: $(STAMP) package jars ## the rehearsal and S3A tests (own CI step after make test)
	@rc=0; $(PY) -m pytest -m rehearsal tests/test_s3a.py tests/test_rehearsal.py $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# --- Airflow: dags/featurize_images_emr.py (docs/emr.md, "Scheduling with Airflow") ------
$(DAG_STAMP): dags/requirements.txt dags/constraints.txt
	$(PYTHON_BOOT) -m venv $(DAG_VENV)
	$(DAG_PY) -m pip install --quiet -c dags/constraints.txt --upgrade pip
	$(DAG_PY) -m pip install --quiet -c dags/constraints.txt -r dags/requirements.txt \
	  "moto[server]" pytest
	@touch $@

dag-test: $(DAG_STAMP) ## Airflow DAG: imports, same requests as the CLI, runs against moto (own venv .venv-dag/; a CI step)
	@rc=0; $(DAG_PY) -m pytest tests/dag $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

dag-package: $(DAG_STAMP) ## Airflow: dist/airflow/featurize_images_emr.zip, the DAG + the emr and featurize packages
	$(DAG_PY) -m emr $(call opt,DIST,--dist) dag-package

clean: ## remove build output, runs and the venvs
	rm -rf build runs dist $(VENV) $(DAG_VENV) .pytest_cache spark-warehouse
