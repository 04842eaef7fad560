"""Stages for a model that is no `nn.Sequential`: its `torch.fx` graph cut wherever a single tensor
flows from one part to the next, so running the parts in order is running the model.

Every such point after a module is a cut: the parts are as fine as the graph allows, and a kernel
bag fuses them into stages of balanced cost (`compile --min-stage-ms`), as it does the zoo's. An
ONNX file is cut the same way with the onnx tools, after every node that holds weights, each part its own ONNX
model. A part whose input fans out into paths joined by one `torch.cat` on channels becomes a
branch group (`Branches`), which the coordinator may run side by side, as the zoo's Inception
blocks. A model that `torch.fx` cannot trace (data-dependent control flow, TorchScript) stays one
stage, and the log says why.
"""
from __future__ import annotations

import logging

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata
from torch.fx.passes.split_module import split_module

from .stage_graph import Branches

log = logging.getLogger(__name__)


def _cuts(graph: fx.Graph) -> list[tuple[int, fx.Node]]:
    """(i, the value) for each index i (into graph.nodes) after which exactly one value, a tensor,
    is still needed, and the part since the last cut holds a module (an activation or a reshape
    alone is no stage)."""
    nodes = list(graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((index[u] for u in n.users), default=index[n]) for n in nodes}
    cuts, has_module = [], False
    for i, node in enumerate(nodes[:-1]):
        has_module |= node.op == "call_module"
        if node.op == "placeholder" or nodes[i + 1].op == "output" or not has_module:
            continue
        live = [n for n in nodes[:i + 1] if last_use[n] > i]
        if len(live) == 1 and isinstance(live[0].meta.get("tensor_meta"), TensorMetadata):
            cuts.append((i, live[0]))
            has_module = False
    return cuts


def onnx_parts(data: bytes) -> list[bytes]:
    """An ONNX model's bytes cut where a single tensor flows, after a node that holds weights (an
    initializer); one part when there is no such point."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(data))
    g = model.graph
    weights = {t.name for t in g.initializer}
    inputs = [i.name for i in g.input if i.name not in weights]
    outputs = [o.name for o in g.output]
    if len(inputs) != 1 or len(outputs) != 1:
        return [data]
    nodes = list(g.node)
    made = {name: i for i, n in enumerate(nodes) for name in n.output}
    last_use = {name: len(nodes) for name in outputs}  # read after the last node
    for i, n in enumerate(nodes):
        for name in n.input:
            if name in made:
                last_use[name] = max(last_use.get(name, 0), i)
    cuts, has_weights = [], False
    for i, n in enumerate(nodes[:-1]):
        has_weights |= any(name in weights for name in n.input)
        live = [name for name, at in made.items() if at <= i and last_use.get(name, at) > i]
        if has_weights and len(live) == 1 and inputs[0] not in {x for m in nodes[i + 1:] for x in m.input}:
            cuts.append(live[0])
            has_weights = False
    extractor, bounds = Extractor(model), [inputs[0], *cuts, outputs[0]]
    return [extractor.extract_model([a], [b]).SerializeToString() for a, b in zip(bounds, bounds[1:])]


def auto_stages(module: nn.Module, example: torch.Tensor, name: str) -> nn.Sequential | None:
    """`module` as a Sequential of its graph's parts (sharing its weights), or None when it cannot
    be cut (logged with the reason)."""
    data = getattr(module, "onnx_bytes", None)
    if data is not None:
        parts = onnx_parts(data)
        if len(parts) == 1:
            log.info("%s: no point in its ONNX graph where a single tensor flows: it runs as one stage", name)
            return None
        log.info("%s: ONNX graph cut into %d parts where a single tensor flows", name, len(parts))
        return nn.Sequential(*(type(module)(part) for part in parts))
    if isinstance(module, torch.jit.ScriptModule):
        log.info("%s: TorchScript has no torch.fx graph: it runs as one stage", name)
        return None
    try:
        gm = fx.symbolic_trace(module)
        if [n.op for n in gm.graph.nodes].count("placeholder") != 1:
            raise ValueError("it takes more than one input")
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as exc:  # what a trace of user code raises is open-ended
        log.info("%s: torch.fx cannot trace it (%s: %s): it runs as one stage", name, type(exc).__name__,
                 str(exc).splitlines()[0] if str(exc) else "")
        return None
    nodes = list(gm.graph.nodes)
    cuts = _cuts(gm.graph)
    if not cuts:
        log.info("%s: no point in its graph where a single tensor flows: it runs as one stage", name)
        return None
    after = {i for i, _ in cuts}
    part, k = {}, 0
    for i, node in enumerate(nodes):
        part[node] = k
        k += i in after
    split = split_module(gm, module, lambda node: part[node], keep_original_order=True)
    parts = [getattr(split, f"submod_{j}") for j in range(k + 1)]
    # A part whose input fans out into paths joined by one concatenation is a branch group.
    starts = [next(n for n in nodes if n.op == "placeholder")] + [value for _, value in cuts]
    for j, start in enumerate(starts):
        branches = _branches(gm, start, [n for n in nodes if part[n] == j and n.op not in ("placeholder", "output")])
        if branches:
            parts[j] = Branches(*branches)
    groups = sum(isinstance(p, Branches) for p in parts)
    log.info("%s: cut into %d parts where a single tensor flows%s", name, len(parts),
             f", {groups} of them parallel branches" if groups else "")
    return nn.Sequential(*parts)


def _branches(gm: fx.GraphModule, start: fx.Node, body: list[fx.Node]) -> list[fx.GraphModule]:
    """The paths of a part (its nodes `body`, its input `start`) that ends in torch.cat(dim=1) of
    paths sharing nothing but the input, each as a module of its own; [] when the part is no such
    group."""
    if not body:
        return []
    join = body[-1]
    if join.op != "call_function" or join.target is not torch.cat or len(join.args) < 1:
        return []
    dim = join.args[1] if len(join.args) > 1 else join.kwargs.get("dim", 0)
    ends = join.args[0]
    if dim != 1 or not isinstance(ends, (list, tuple)) or len(ends) < 2:
        return []
    inside, paths = set(body), []
    for end in ends:
        path, todo = set(), [end]
        while todo:
            n = todo.pop()
            if n is start or n in path:
                continue
            if n not in inside:
                return []
            path.add(n)
            todo.extend(a for a in n.all_input_nodes)
        paths.append(path)
    if sum(map(len, paths)) != len(set().union(*paths)) or set().union(*paths) | {join} != inside:
        return []  # shared nodes, or work outside the paths
    modules = []
    for end, path in zip(ends, paths):
        graph = fx.Graph()
        env = {start: graph.placeholder("x")}
        for n in body:
            if n in path:
                env[n] = graph.node_copy(n, env.__getitem__)
        graph.output(env[end])
        modules.append(fx.GraphModule(gm, graph))
    return modules
