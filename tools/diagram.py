#!/usr/bin/env python3
"""Draw both CloudFormation stacks as one Graphviz diagram, from the templates themselves.

    python tools/diagram.py cfn/aws-prerequisites.yaml cfn/aws-deploy.yaml -o docs/architecture.svg
    python tools/diagram.py ... --dot        # print the DOT source instead

The first template is the prerequisites stack (its Outputs export "${AWS::StackName}-X"),
the second the service stack (it imports them as "${PrerequisitesStackName}-X").

An arrow A -> B means B refers to A (Ref, Fn::GetAtt, Fn::Sub, anywhere in the resource:
Properties, Metadata, UpdatePolicy), B DependsOn A, or B imports an export whose value A
makes: CloudFormation creates A before B. Pure plumbing is folded into its parent
node: security group ingress/egress rules into the group they modify (GroupId), IAM policies
into the role they attach to (Roles). A folded resource's references become the parent's,
except where that would turn the graph into a cycle (the rule then names its peer in the
parent's label). The health waits (Custom::ServicesHealthy) name the ECS services by string:
they get an undirected dotted line to each service whose ServiceName they name, which is not
an ordering.

The output is deterministic: every iteration is sorted, there are no timestamps, and the
version comment Graphviz writes into the SVG is removed.
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FONT = "DejaVu Sans"

# --------------------------------------------------------------------------- YAML


class CfnLoader(yaml.SafeLoader):
    """A SafeLoader that turns CloudFormation's short tags into their long form."""


def _construct(node: yaml.Node, loader: yaml.Loader):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _short_tag(name: str):
    def construct(loader: yaml.Loader, node: yaml.Node):
        value = _construct(node, loader)
        if name == "Ref":
            return {"Ref": value}
        if name == "Condition":
            return {"Condition": value}
        if name == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {"Fn::" + name: value}

    return construct


for _tag in (
    "And", "Base64", "Cidr", "Condition", "Equals", "FindInMap", "GetAtt", "GetAZs",
    "If", "ImportValue", "Join", "Length", "Not", "Or", "Ref", "Select", "Split", "Sub",
    "ToJsonString", "Transform",
):
    CfnLoader.add_constructor("!" + _tag, _short_tag(_tag))


def load_template(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        template = yaml.load(f, Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise SystemExit(f"{path}: not a CloudFormation template (no Resources)")
    return template


# --------------------------------------------------------------------------- references

SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def sub_names(text: str, local: set[str]) -> list[str]:
    """The logical names a Fn::Sub string refers to (${X}, ${X.Attr}), not its own variables."""
    names = []
    for var in SUB_VAR.findall(text):
        name = var.strip().split(".", 1)[0]
        if name not in local and not name.startswith("AWS::"):
            names.append(name)
    return names


def import_suffix(value) -> str | None:
    """'X' for Fn::ImportValue of Fn::Sub "${SomeParameter}-X"; None for anything else."""
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        m = re.fullmatch(r"\$\{[A-Za-z0-9]+\}-(.+)", value["Fn::Sub"])
        if m:
            return m.group(1)
    return None


@dataclass
class Refs:
    names: set[str] = field(default_factory=set)  # Ref / GetAtt / Sub targets
    imports: set[str] = field(default_factory=set)  # export suffixes
    bad_imports: set[str] = field(default_factory=set)


def collect(value, refs: Refs) -> Refs:
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and isinstance(arg, str):
                if not arg.startswith("AWS::"):
                    refs.names.add(arg)
                return refs
            if key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                refs.names.add(target)
                return refs
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    refs.names.update(sub_names(arg, set()))
                    return refs
                text, variables = arg[0], arg[1] if len(arg) > 1 else {}
                refs.names.update(sub_names(text, set(variables)))
                return collect(variables, refs)
            if key == "Fn::ImportValue":
                suffix = import_suffix(arg)
                if suffix is None:
                    refs.bad_imports.add(repr(arg))
                else:
                    refs.imports.add(suffix)
                return refs
        for key in sorted(value):
            collect(value[key], refs)
    elif isinstance(value, list):
        for item in value:
            collect(item, refs)
    return refs


def depends_on(resource: dict) -> list[str]:
    d = resource.get("DependsOn", [])
    return [d] if isinstance(d, str) else list(d)


def resource_refs(resource: dict) -> Refs:
    refs = Refs()
    for key in sorted(resource):
        if key not in ("Type", "Condition", "DeletionPolicy", "UpdateReplacePolicy", "DependsOn"):
            collect(resource[key], refs)
    return refs


# --------------------------------------------------------------------------- model

# Group of a resource type (by prefix); the first match wins.
GROUPS = [
    ("AWS::EC2::SecurityGroup", "network"),
    ("AWS::EC2::VPCEndpoint", "network"),
    ("AWS::EC2::LaunchTemplate", "compute"),
    ("AWS::AutoScaling::", "compute"),
    ("AWS::ECS::", "compute"),
    ("AWS::ServiceDiscovery::", "compute"),
    ("AWS::ElasticLoadBalancingV2::", "loadbalancer"),
    ("AWS::IAM::", "iam"),
    ("AWS::Logs::", "logs"),
    ("AWS::Lambda::", "custom"),
    ("Custom::", "custom"),
    ("AWS::S3::", "storage"),
    ("AWS::EFS::", "storage"),
]

GROUP_TITLES = {
    "storage": "Storage (S3, EFS)",
    "network": "Network (security groups, endpoint)",
    "compute": "Compute (ECS on EC2)",
    "loadbalancer": "Load balancer",
    "iam": "IAM",
    "logs": "Logs",
    "custom": "Custom resources and their functions",
    "exports": "Exports (Outputs)",
}

GROUP_COLORS = {  # fill of the nodes, border of the group
    "storage": ("#e8f5e9", "#2e7d32"),
    "network": ("#e3f2fd", "#1565c0"),
    "compute": ("#fff3e0", "#e65100"),
    "loadbalancer": ("#f3e5f5", "#6a1b9a"),
    "iam": ("#fce4ec", "#ad1457"),
    "logs": ("#eceff1", "#455a64"),
    "custom": ("#fffde7", "#f9a825"),
    "exports": ("#f5f5f5", "#616161"),
}

# Plumbing folded into a parent: type -> the property naming the parent.
FOLDED = {
    "AWS::EC2::SecurityGroupIngress": "GroupId",
    "AWS::EC2::SecurityGroupEgress": "GroupId",
    "AWS::IAM::Policy": "Roles",
}

# A WaitConditionHandle with references in its Metadata is a conditional DependsOn.
GATE = "AWS::CloudFormation::WaitConditionHandle"


def group_of(rtype: str, resource: dict) -> str:
    if rtype == GATE:
        # A gate belongs with what it waits for.
        refs = sorted(resource_refs(resource).names)
        return "gate:" + (refs[0] if refs else "")
    for prefix, group in GROUPS:
        if rtype.startswith(prefix):
            return group
    return "other"


@dataclass
class Node:
    id: str  # graph node id: "<stack>.<LogicalId>"
    stack: str
    logical: str
    rtype: str
    group: str
    condition: str | None
    retained: bool
    folded: list[str] = field(default_factory=list)


@dataclass(frozen=True, order=True)
class Edge:
    src: str
    dst: str
    kind: str  # ref | dependson | import | export | watches


class Diagram:
    def __init__(self, prereq: dict, deploy: dict, prereq_name: str, deploy_name: str):
        self.stacks = {"pre": (prereq_name, prereq), "dep": (deploy_name, deploy)}
        self.nodes: dict[str, Node] = {}
        self.edges: set[Edge] = set()
        self.exports: dict[str, set[str]] = {}  # export suffix -> node ids making its value
        self.external: dict[str, str] = {}  # parameter node id -> label
        self.missing_imports: set[str] = set()
        self.notes_cycle: dict[str, dict[str, str]] = {}  # parent -> folded -> peer left out
        for key in ("pre", "dep"):
            self._add_stack(key)
        self._add_exports()
        self._add_watches()

    # A parameter of an AWS-specific EC2 type names something that exists already.
    def _external(self, key: str, name: str) -> str | None:
        _, template = self.stacks[key]
        param = (template.get("Parameters") or {}).get(name)
        if isinstance(param, dict) and str(param.get("Type", "")).startswith(("AWS::EC2::", "List<AWS::EC2::")):
            node = f"{key}.param.{name}"
            self.external[node] = f"{name}\n{param['Type']}"
            return node
        return None

    def _parent(self, key: str, resources: dict, rid: str) -> str:
        """The logical id a resource is drawn as (itself, or the parent it is folded into)."""
        res = resources[rid]
        prop = FOLDED.get(res.get("Type"))
        if prop:
            names = sorted(collect((res.get("Properties") or {}).get(prop), Refs()).names & set(resources))
            if names:
                return self._parent(key, resources, names[0])
        return rid

    def _add_stack(self, key: str):
        _, template = self.stacks[key]
        resources = template["Resources"]
        parent = {rid: self._parent(key, resources, rid) for rid in sorted(resources)}
        for rid in sorted(resources):
            if parent[rid] != rid:
                continue
            res = resources[rid]
            rtype = res.get("Type", "?")
            self.nodes[f"{key}.{rid}"] = Node(
                id=f"{key}.{rid}", stack=key, logical=rid, rtype=rtype,
                group=group_of(rtype, res), condition=res.get("Condition"),
                retained=res.get("DeletionPolicy") == "Retain",
            )
        for rid in sorted(resources):
            if parent[rid] != rid:
                self.nodes[f"{key}.{parent[rid]}"].folded.append(rid)

        # Edges of the resources themselves first, then of the folded ones (which may not
        # close a cycle).
        order = sorted(resources, key=lambda r: (parent[r] != r, r))
        for rid in order:
            res = resources[rid]
            me = f"{key}.{parent[rid]}"
            refs = resource_refs(res)
            candidates = [(n, "ref") for n in sorted(refs.names)]
            candidates += [(n, "dependson") for n in sorted(depends_on(res))]
            for name, kind in candidates:
                if name in resources:
                    src = f"{key}.{parent[name]}"
                else:
                    src = self._external(key, name)
                    if src is None:
                        continue  # a parameter, a condition's input, a mapping
                if src == me:
                    continue
                if parent[rid] != rid and self._reaches(me, src):
                    self.notes_cycle.setdefault(me, {})[rid] = name
                    continue
                self.edges.add(Edge(src, me, kind))
            for suffix in sorted(refs.imports):
                self.edges.add(Edge(f"export.{suffix}", me, "import"))
            if refs.bad_imports:
                raise SystemExit(f"{rid}: Fn::ImportValue not of the form ${{Parameter}}-Name: {sorted(refs.bad_imports)}")
        # A DependsOn and a Ref between the same two nodes: draw the DependsOn only.
        for e in sorted(self.edges):
            if e.kind == "ref" and Edge(e.src, e.dst, "dependson") in self.edges:
                self.edges.discard(e)

    def _reaches(self, start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            n = todo.pop()
            if n == goal:
                return True
            if n in seen:
                continue
            seen.add(n)
            todo.extend(e.dst for e in self.edges if e.src == n)
        return False

    def _add_exports(self):
        _, template = self.stacks["pre"]
        resources = template["Resources"]
        for out_name in sorted(template.get("Outputs") or {}):
            out = template["Outputs"][out_name]
            export = (out.get("Export") or {}).get("Name")
            if export is None:
                continue
            m = isinstance(export, dict) and re.fullmatch(r"\$\{AWS::StackName\}-(.+)", str(export.get("Fn::Sub")))
            if not m:
                raise SystemExit(f"prerequisites output {out_name}: export name not ${{AWS::StackName}}-Name")
            suffix = m.group(1)
            makers = set()
            for name in sorted(collect(out.get("Value"), Refs()).names):
                if name in resources:
                    makers.add(f"pre.{self._parent('pre', resources, name)}")
                else:
                    ext = self._external("pre", name)
                    if ext:
                        makers.add(ext)
            self.exports[suffix] = makers
            for src in sorted(makers):
                self.edges.add(Edge(src, f"export.{suffix}", "export"))
        used = {e.src.split(".", 1)[1] for e in self.edges if e.kind == "import"}
        self.missing_imports = used - set(self.exports)
        for suffix in sorted(self.missing_imports):
            print(f"warning: the service stack imports {suffix!r}, which the prerequisites stack does not export",
                  file=sys.stderr)

    def _add_watches(self):
        """Custom resources naming ECS services by string (Services: [!Sub ${AWS::StackName}-x])."""
        _, template = self.stacks["dep"]
        resources = template["Resources"]
        names = {}
        for rid in sorted(resources):
            res = resources[rid]
            if res.get("Type") == "AWS::ECS::Service":
                sn = (res.get("Properties") or {}).get("ServiceName")
                if sn is not None:
                    names[repr(sn)] = f"dep.{rid}"
        for rid in sorted(resources):
            res = resources[rid]
            if not str(res.get("Type", "")).startswith("Custom::"):
                continue
            services = (res.get("Properties") or {}).get("Services") or []
            for s in services if isinstance(services, list) else [services]:
                target = names.get(repr(s))
                if target:
                    self.edges.add(Edge(f"dep.{rid}", target, "watches"))


# --------------------------------------------------------------------------- DOT


def q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


SHORT_TYPES = [("AWS::ElasticLoadBalancingV2::", "ELBv2::"), ("AWS::CloudFormation::", "CFN::"), ("AWS::", "")]


def short_type(rtype: str) -> str:
    for prefix, short in SHORT_TYPES:
        if rtype.startswith(prefix):
            return short + rtype[len(prefix):]
    return rtype


def node_label(n: Node, notes: dict[str, str]) -> str:
    rows = [f'<b>{html.escape(n.logical)}</b>', f'<font point-size="9">{html.escape(short_type(n.rtype))}</font>']
    if n.condition:
        rows.append(f'<font point-size="9" color="#b71c1c">only if {html.escape(n.condition)}</font>')
    if n.retained:
        rows.append('<font point-size="9" color="#1b5e20">retained on delete</font>')
    for f in n.folded:
        peer = notes.get(f)
        rows.append(f'<font point-size="8" color="#555555">+ {html.escape(f)}</font>')
        if peer:
            rows.append(f'<font point-size="8" color="#555555">  (refers to {html.escape(peer)})</font>')
    return "<" + "<br/>".join(rows) + ">"


EDGE_STYLE = {
    "ref": 'color="#757575"',
    "dependson": 'color="#c62828", penwidth=2',
    "import": 'color="#1565c0", style=dashed',
    "export": 'color="#9e9e9e"',
    "watches": 'color="#f57f17", style=dotted, dir=none, constraint=false, penwidth=2',
}

LEGEND = (
    "<b>How to read it.</b> Left to right in creation order: an arrow A &#8594; B means CloudFormation creates A "
    "before B. Grey: B refers to A (Ref, GetAtt, Sub); <font color=\"#c62828\"><b>red</b></font>: B DependsOn A; "
    "<font color=\"#1565c0\">dashed blue</font>: B imports that export of the prerequisites stack "
    "(Fn::ImportValue). Lines share a path where they run together: follow them to their arrowheads.<br align=\"left\"/>"
    "<font color=\"#f57f17\">Dotted orange line</font> (no arrowhead): a health wait polls that service, named in "
    "its Services property; it runs beside the service's creation, not after it. "
    "Dashed box: created only under its condition. White box: a WaitConditionHandle that makes a conditional "
    "DependsOn.<br align=\"left\"/>"
    "<b>Left out:</b> parameters (except the existing VPC and subnets), mappings, conditions, the service stack's "
    "outputs. <b>Folded into their parent</b> (listed with +): security group ingress/egress rules into the group "
    "they change, IAM policies into their role.<br align=\"left\"/>"
    "Drawn by make diagram (tools/diagram.py) from cfn/aws-prerequisites.yaml and cfn/aws-deploy.yaml.<br align=\"left\"/>"
)


def to_dot(d: Diagram) -> str:
    # Left to right in creation order; orthogonal edges (curved ones loop around the groups).
    out = [
        "digraph architecture {",
        f'  graph [rankdir=LR, newrank=true, splines=ortho, nodesep=0.2, ranksep=0.5, fontname={q(FONT)}, '
        f'fontsize=11, labelloc=b, labeljust=l, label=<{LEGEND}>];',
        f'  node [shape=box, style="rounded,filled", fontname={q(FONT)}, fontsize=10, margin="0.12,0.05"];',
        f'  edge [fontname={q(FONT)}, fontsize=8, arrowsize=0.7];',
    ]

    def emit_node(n: Node, indent: str):
        fill, border = GROUP_COLORS.get(n.group, ("#ffffff", "#000000"))
        style = "rounded,filled,dashed" if n.condition else "rounded,filled"
        out.append(f'{indent}{q(n.id)} [label={node_label(n, d.notes_cycle.get(n.id, {}))}, '
                   f'fillcolor={q(fill)}, color={q(border)}, style={q(style)}];')

    # A gate is drawn in the group of what it waits for.
    def effective_group(n: Node) -> str:
        if n.group.startswith("gate:"):
            target = d.nodes.get(f"{n.stack}.{n.group[5:]}")
            return target.group if target and not target.group.startswith("gate:") else "other"
        return n.group

    # Existing infrastructure, outside both stacks.
    if d.external:
        out.append("  subgraph cluster_existing {")
        out.append('    label=<<b>Existing, not created</b> (parameters)>; style="rounded,dashed"; color="#616161";')
        for nid in sorted(d.external):
            name, ptype = d.external[nid].split("\n")
            out.append(f'    {q(nid)} [label=<<b>{html.escape(name)}</b><br/><font point-size="9">'
                       f'{html.escape(ptype)}</font>>, fillcolor="#ffffff", color="#616161"];')
        out.append("  }")

    for key in ("pre", "dep"):
        stack_name, _ = d.stacks[key]
        source = {"pre": "cfn/aws-prerequisites.yaml", "dep": "cfn/aws-deploy.yaml"}[key]
        out.append(f"  subgraph cluster_{key} {{")
        out.append(f'    label=<<b>{html.escape(stack_name)}</b> <font point-size="10">({source})</font>>; '
                   'style=rounded; color="#212121"; penwidth=2; fontsize=13;')
        by_group: dict[str, list[Node]] = {}
        for nid in sorted(d.nodes):
            n = d.nodes[nid]
            if n.stack == key:
                by_group.setdefault(effective_group(n), []).append(n)
        for group in sorted(by_group):
            _, border = GROUP_COLORS.get(group, ("#ffffff", "#000000"))
            out.append(f"    subgraph cluster_{key}_{group} {{")
            out.append(f'      label={q(GROUP_TITLES.get(group, group))}; style="rounded,filled"; '
                       f'fillcolor="#ffffff"; color={q(border)};')
            for n in by_group[group]:
                emit_node(n, "      ")
            out.append("    }")
        if key == "pre" and (d.exports or d.missing_imports):
            # One column: what the stack makes goes in from the left, imports leave to the right.
            fill, border = GROUP_COLORS["exports"]
            out.append("    subgraph cluster_pre_exports {")
            out.append(f'      label=<{GROUP_TITLES["exports"]}: ${{AWS::StackName}}-<i>name</i>>; '
                       f'style="rounded,filled"; fillcolor="#ffffff"; color={q(border)}; rank=same;')
            for suffix in sorted(set(d.exports) | d.missing_imports):
                if suffix in d.exports:
                    label, color = html.escape(suffix), fill
                else:
                    label, color = f"{html.escape(suffix)}<br/><b>NOT EXPORTED</b>", "#ffcdd2"
                out.append(f'      {q("export." + suffix)} [label=<{label}>, style=filled, fillcolor={q(color)}, '
                           f'color={q(border)}, fontsize=9, margin="0.06,0.03"];')
            out.append("    }")
        out.append("  }")

    for e in sorted(d.edges):
        out.append(f"  {q(e.src)} -> {q(e.dst)} [{EDGE_STYLE[e.kind]}];")
    # The service stack is created after the prerequisites stack: draw it to the right
    # (invisible edges from an export to the service stack's resources that depend on nothing).
    targets = {e.dst for e in d.edges if e.kind != "watches"}
    if d.exports:
        anchor = q("export." + sorted(d.exports)[0])
        for nid in sorted(d.nodes):
            if d.nodes[nid].stack == "dep" and nid not in targets:
                out.append(f"  {anchor} -> {q(nid)} [style=invis];")
    out.append("}")
    return "\n".join(out) + "\n"


def render_svg(dot_source: str) -> bytes:
    try:
        svg = subprocess.run(["dot", "-Tsvg"], input=dot_source.encode(), capture_output=True, check=True).stdout
    except FileNotFoundError:
        raise SystemExit("dot (Graphviz) not found: apt-get install -y graphviz, or make diagram") from None
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"dot failed: {e.stderr.decode(errors='replace')}") from None
    # Graphviz writes its version into a comment: drop it, so the file depends on the templates only.
    return re.sub(rb"<!-- Generated by graphviz version [^>]*-->\n", b"", svg)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prerequisites", type=Path)
    p.add_argument("deploy", type=Path)
    p.add_argument("-o", "--output", type=Path, help="SVG file to write (default: stdout)")
    p.add_argument("--dot", action="store_true", help="print the DOT source instead of rendering")
    p.add_argument("--prerequisites-name", default="Prerequisites stack")
    p.add_argument("--deploy-name", default="Service stack")
    args = p.parse_args(argv)

    d = Diagram(load_template(args.prerequisites), load_template(args.deploy),
                args.prerequisites_name, args.deploy_name)
    source = to_dot(d)
    data = source.encode() if args.dot else render_svg(source)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
