# The architecture diagram (README, "What it creates and what it costs"): both stacks drawn from
# the templates by tools/diagram.py and Graphviz. tests/cfn/diagram_up_to_date.sh (make test)
# fails when the committed SVG is not what the templates draw now.
DIAGRAM_SVG := docs/architecture.svg
DIAGRAM_TEMPLATES := cfn/aws-prerequisites.yaml cfn/aws-deploy.yaml

.PHONY: diagram
diagram: $(VENV)/.installed ## Draw both stacks from the templates into docs/architecture.svg (installs Graphviz when dot is missing)
	@bash tools/ensure-graphviz.sh
	$(VENV)/bin/python tools/diagram.py $(DIAGRAM_TEMPLATES) -o $(DIAGRAM_SVG)
	@echo "Drew $(DIAGRAM_SVG); commit it with the templates."
