# CloudFormation: lint the templates, test them on moto, package the custom-resource
# Lambda, deploy and delete a stage. Walkthrough: README.md, "Deploying to AWS".

TEMPLATES := cfn/aws-prerequisites.yaml cfn/aws-deploy.yaml cfn/aws-live-sync.yaml
# The largest template `create-stack --template-body file://...` accepts.
TEMPLATE_MAX_BYTES := 51200
# AWS Control Tower proactive-control Guard rules and cfn-guard, from npm (optional).
GUARD_DIR := $(LINT_VENV)/guard
GUARD_NPM_PACKAGE := @cdklabs/cdk-validator-cfnguard@0.0.62

# make package|deploy|delete STAGE=prod reads cfn/prerequisites-prod.env and cfn/deploy-prod.env.
STAGE ?=
ARCH ?= arm64
AWS ?= aws
PREREQ_STACK ?= lookup-prerequisites-$(STAGE)
SERVICE_STACK ?= lookup-service-$(STAGE)
PREREQ_PARAMS := cfn/prerequisites-$(STAGE).env
SERVICE_PARAMS := cfn/deploy-$(STAGE).env
LAMBDA_ZIP := target/lambda/custom-resources/bootstrap.zip
PACKAGE_DIR := target/cfn/$(STAGE)
# Where the zip goes: by default the prerequisites bucket of the stage (private, versioned).
LAMBDA_BUCKET ?=
CARGO ?= cargo
# cargo-lambda's own release "optimizations" pass --config profile.release.panic="abort" (seen in
# cargo-lambda 1.9.2's cargo command line), which overrides Cargo.toml: a panic would then kill the
# process and CloudFormation would wait out its timeout instead of reading FAILED. The root
# Cargo.toml's release profile says what the zip is built with, panic = "unwind" included.
CARGO_LAMBDA_OPTIONS := --disable-optimizations
CARGO_LAMBDA_ARCH_arm64 := --arm64
CARGO_LAMBDA_ARCH_x86_64 := --x86-64

.PHONY: lint test-templates lambda-zip package deploy deploy-prerequisites delete why stage-given doctor doctor-prerequisites publish-authorities

lint: $(LINT_VENV)/.installed ## Lint the templates: cfn-lint (0 errors/warnings), checkov (0 failed), size, Control Tower Guard rules when npm is there
	$(LINT_VENV)/bin/cfn-lint $(TEMPLATES)
	$(LINT_VENV)/bin/checkov --directory cfn --framework cloudformation --skip-download --compact --quiet
	@for t in $(TEMPLATES); do \
	  size=$$(wc -c < $$t); echo "$$t: $$size bytes (max $(TEMPLATE_MAX_BYTES))"; \
	  [ $$size -le $(TEMPLATE_MAX_BYTES) ] || exit 1; \
	done
	@if ! command -v npm >/dev/null; then echo "guard: npm not found - Control Tower rules skipped"; \
	elif ! $(MAKE) --no-print-directory $(GUARD_DIR)/.installed; then echo "guard: npm install failed - Control Tower rules skipped"; \
	else GUARD_PACKAGE=$(abspath $(GUARD_DIR))/node_modules/@cdklabs/cdk-validator-cfnguard bash tests/cfn/guard_rules.sh; fi

$(GUARD_DIR)/.installed:
	npm install --prefix $(GUARD_DIR) --no-audit --no-fund --legacy-peer-deps --silent $(GUARD_NPM_PACKAGE)
	touch $@

test-templates: $(VENV)/.installed ## Run tests/cfn/*.sh: the documented prerequisites commands and task definition on moto, the Guard rules
	@status=0; for t in tests/cfn/*.sh; do echo "== $$t"; bash $$t || status=1; done; exit $$status

stage-given:
	@test -n "$(STAGE)" || { echo "Set STAGE, e.g. make deploy STAGE=prod (uses cfn/prerequisites-prod.env and cfn/deploy-prod.env)"; exit 2; }

lambda-zip: $(VENV)/.installed ## Build the custom-resource Lambda zip (ARCH=arm64|x86_64) and print its size
	@test -n "$(CARGO_LAMBDA_ARCH_$(ARCH))" || { echo "ARCH must be arm64 or x86_64"; exit 2; }
	$(CARGO) lambda build --profile lambda $(CARGO_LAMBDA_OPTIONS) $(CARGO_LAMBDA_ARCH_$(ARCH)) --output-format zip --bin custom-resources
	@echo "$(LAMBDA_ZIP) ($(ARCH)): $$(wc -c < $(LAMBDA_ZIP)) bytes"

package: stage-given lambda-zip ## Build the custom-resource Lambda zip (ARCH=arm64|x86_64), upload it, write target/cfn/STAGE/ (parameters, packaged template)
	mkdir -p $(PACKAGE_DIR)
	bucket=$${LAMBDA_BUCKET:-$$($(AWS) cloudformation describe-stacks --stack-name $(PREREQ_STACK) \
	  --query "Stacks[0].Outputs[?OutputKey=='BucketName'].OutputValue" --output text)} && \
	key=lambda/custom-resources-$(ARCH)-$$(sha256sum $(LAMBDA_ZIP) | cut -c1-12).zip && \
	$(AWS) s3 cp --only-show-errors $(LAMBDA_ZIP) s3://$$bucket/$$key && \
	printf '[{"ParameterKey": "%s", "ParameterValue": "%s"},\n {"ParameterKey": "%s", "ParameterValue": "%s"},\n {"ParameterKey": "%s", "ParameterValue": "%s"}]\n' \
	  LambdaCodeBucket $$bucket LambdaCodeKey $$key LambdaArchitecture $(ARCH) > $(PACKAGE_DIR)/lambda-parameters.json && \
	sed -e "/^  LambdaCodeBucket:$$/a\    Default: $$bucket" \
	    -e "/^  LambdaCodeKey:$$/a\    Default: $$key" \
	    -e "/^  LambdaArchitecture:$$/,/Default:/s/Default: .*/Default: $(ARCH)/" \
	    cfn/aws-deploy.yaml > $(PACKAGE_DIR)/aws-deploy.yaml
	@echo "Packaged: $(PACKAGE_DIR)/lambda-parameters.json, and $(PACKAGE_DIR)/aws-deploy.yaml for the console"

# $(call cfn-deploy,STACK,TEMPLATE,PARAMETER FILES,EXTRA Key=Value): create or update the
# stack and wait for it (later files and extras override earlier ones). On failure it
# prints the stack's failed events, which say why, and, only for a stack left in
# ROLLBACK_COMPLETE, that it must be deleted first.
define cfn-deploy
	mapfile -t params < <($(PYTHON) -c 'import json, sys; [print(p["ParameterKey"] + "=" + p["ParameterValue"]) for f in sys.argv[1:] for p in json.load(open(f))]' $(3)) && \
	$(AWS) cloudformation deploy --stack-name $(1) --template-file $(2) \
	  --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
	  --parameter-overrides "$${params[@]}" $(4) \
	|| { $(AWS) cloudformation describe-stack-events --stack-name $(1) --max-items 30 --output text \
	  --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[Timestamp, LogicalResourceId, ResourceStatusReason]'; \
	  if [ "$$($(AWS) cloudformation describe-stacks --stack-name $(1) --query 'Stacks[0].StackStatus' --output text 2>/dev/null)" = ROLLBACK_COMPLETE ]; then \
	    echo "A stack whose creation rolled back (ROLLBACK_COMPLETE) must be deleted before it is created again."; fi; \
	  echo "Why it failed, with the functions' and containers' log lines: make why STAGE=$(STAGE)"; \
	  exit 1; }
endef

QA_DEPLOY := target/debug/qa-deploy
DOCTOR = $(CARGO) build --quiet -p qa-lookup-functions --bin qa-deploy && \
	$(QA_DEPLOY) doctor --prerequisites $(PREREQ_PARAMS) --prerequisites-stack $(PREREQ_STACK) --stack $(SERVICE_STACK)

doctor: stage-given ## Check STAGE's parameter files against the account before create-stack (network, S3 inputs, certificate, AMI, capacity, stacks)
	@test -f $(PREREQ_PARAMS) || { echo "Missing $(PREREQ_PARAMS): copy cfn/prerequisites.env.example and fill it in"; exit 2; }
	@$(DOCTOR) $(foreach f,$(wildcard $(SERVICE_PARAMS) $(PACKAGE_DIR)/lambda-parameters.json),--deploy $(f))

doctor-prerequisites: stage-given
	@test -f $(PREREQ_PARAMS) || { echo "Missing $(PREREQ_PARAMS): copy cfn/prerequisites.env.example and fill it in"; exit 2; }
	@$(DOCTOR)

deploy-prerequisites: stage-given ## Create or update only the prerequisites stack of STAGE (bucket, EFS) from cfn/prerequisites-STAGE.env
	@test -f $(PREREQ_PARAMS) || { echo "Missing $(PREREQ_PARAMS): copy cfn/prerequisites.env.example and fill it in"; exit 2; }
	$(call cfn-deploy,$(PREREQ_STACK),cfn/aws-prerequisites.yaml,$(PREREQ_PARAMS))

deploy: stage-given ## Create or update both stacks of STAGE (cfn/prerequisites-STAGE.env, cfn/deploy-STAGE.env); the doctor before each, the Lambda packaged in between
	@test -f $(SERVICE_PARAMS) || { echo "Missing $(SERVICE_PARAMS): copy cfn/deploy.env.example and fill it in"; exit 2; }
	$(MAKE) --no-print-directory doctor-prerequisites
	$(MAKE) --no-print-directory deploy-prerequisites
	$(MAKE) --no-print-directory package
	$(MAKE) --no-print-directory doctor
	$(call cfn-deploy,$(SERVICE_STACK),cfn/aws-deploy.yaml,$(SERVICE_PARAMS) $(PACKAGE_DIR)/lambda-parameters.json,PrerequisitesStackName=$(PREREQ_STACK))
	$(AWS) cloudformation describe-stacks --stack-name $(SERVICE_STACK) --query 'Stacks[0].Outputs' --output table

why: stage-given ## Why the service stack's latest operation failed: root causes, their log lines, stopped tasks, what to do
	$(CARGO) build --quiet -p qa-lookup-functions --bin qa-deploy
	target/debug/qa-deploy why --stack $(SERVICE_STACK)

publish-authorities: stage-given ## Publish FROM (a local config/authorities) to STAGE's service stack: upload what changed, seed, reload and verify every app task
	@test -n "$(FROM)" || { echo "Give FROM=<folder of authority files>, e.g. make publish-authorities STAGE=$(STAGE) FROM=../qa_server/config/authorities"; exit 2; }
	$(CARGO) build --quiet -p qa-lookup-functions --bin qa-deploy
	target/debug/qa-deploy authorities publish --from "$(FROM)" --stack $(SERVICE_STACK)

# Live sync and the service import the prerequisites' exports: a stack whose export is in use
# cannot be deleted (Fn::ImportValue reference). Every other stack importing BucketName (live
# sync, whatever its name) goes first, then the service, then the prerequisites.
delete: stage-given ## Delete the stacks of STAGE: live sync (if any), service, prerequisites (bucket and file system are retained)
	@for stack in $$($(AWS) cloudformation list-imports --export-name $(PREREQ_STACK)-BucketName \
	    --query Imports --output text 2>/dev/null); do \
	  [ "$$stack" = "$(SERVICE_STACK)" ] && continue; \
	  echo "Deleting $$stack (it imports $(PREREQ_STACK)-BucketName)"; \
	  $(AWS) cloudformation delete-stack --stack-name $$stack && \
	  $(AWS) cloudformation wait stack-delete-complete --stack-name $$stack || exit 1; \
	done
	$(AWS) cloudformation delete-stack --stack-name $(SERVICE_STACK)
	$(AWS) cloudformation wait stack-delete-complete --stack-name $(SERVICE_STACK)
	$(AWS) cloudformation delete-stack --stack-name $(PREREQ_STACK)
	$(AWS) cloudformation wait stack-delete-complete --stack-name $(PREREQ_STACK)
	@echo "Deleted. Retained by design: the S3 bucket and the EFS file system of $(PREREQ_STACK) (delete them by hand to drop the data)."
