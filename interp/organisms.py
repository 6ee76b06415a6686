"""Known-answer model organisms: teachers and students whose attribution answer is known by construction.

Every attribution method in kd-interp is checked on these before its numbers are trusted:
- `damaged_student`: a student copied from teacher layers (skip-layer, e.g. [0, 2, 4], or same
  depth), then chosen heads damaged (value projection scaled: x0 kills a head, x0.5 halves it).
  The answer: the damaged heads, and for each the exact effect of repairing it alone
  (`Organism.repaired(head)`, a full model with only that head's damaged rows restored).
- `permuted_heads`: a copy whose heads are reordered within a layer (same function); the answer is
  the permutation a head map must recover.
- `planted_circuit`: a 2-layer BERT whose answer flows input -> L0H0 (v) -> L1H2 (v) -> logits by
  construction, every other component random; the answer is its nodes and edges
  (`planted_circuit_pairs` gives clean/corrupted inputs that switch the planted path on and off);
  `planted_vit_circuit` / `planted_vit_pairs`: the same circuit planted in a pre-LayerNorm ViT.
- `tiny_bert`, `tiny_tokenizer`, `tiny_pairs`: small random BERTs with weights scaled so effects sit
  well above float rounding, a 60-word vocabulary and seeded random sentence pairs.

Nothing here trains: every answer is exact, so tests can demand 1e-6.
"""
from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

Head = tuple[int, int]
WORDS = [f"w{i}" for i in range(55)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
NLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}


def tiny_tokenizer():
    """A BERT WordPiece tokenizer over [PAD] [UNK] [CLS] [SEP] [MASK] w0..w54 (built in memory)."""
    import transformers as T
    return T.BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)})  # transformers 5: vocab=, not vocab_file=


def tiny_bert(n_layers: int = 3, d: int = 32, heads: int = 4, seed: int = 0, scale: float = 1.0,
              head_scale: float | None = None):
    """A random BertForSequenceClassification (3 NLI labels, eval mode, eager attention).

    `scale` multiplies every weight matrix, `head_scale` (default `scale`) those of the pooler and
    classifier: larger weights make component effects large against float rounding.
    """
    import transformers as T
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # PretrainedConfig kwargs (num_labels, attn_implementation) are missing from BertConfig's typed signature
        cfg = T.BertConfig(hidden_size=d, num_hidden_layers=n_layers, num_attention_heads=heads,  # type: ignore[call-arg]
                           intermediate_size=2 * d, vocab_size=len(VOCAB), num_labels=3, attn_implementation="eager",
                           max_position_embeddings=64, id2label=NLI_LABELS,
                           label2id={v: k for k, v in NLI_LABELS.items()})
        model = T.BertForSequenceClassification(cfg).eval()
    head_scale = scale if head_scale is None else head_scale
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 and (scale != 1.0 or head_scale != 1.0):
                p.mul_(head_scale if ("classifier" in name or "pooler" in name) else scale)
    return model


def tiny_pairs(n: int = 24, seed: int = 0) -> list[dict]:
    """Seeded random premise/hypothesis pairs over the tiny vocabulary."""
    r = random.Random(seed)
    sent = lambda lo, hi: " ".join(r.choice(WORDS) for _ in range(r.randrange(lo, hi)))  # noqa: E731
    return [{"id": f"p{i}", "premise": sent(3, 10), "hypothesis": sent(2, 7)} for i in range(n)]


def _value_rows(model, layer: int, head: int) -> list[tuple[str, slice]]:
    """State-dict names and row slices of one head's value projection (weight and bias)."""
    attn = model.bert.encoder.layer[layer].attention.self
    d = attn.attention_head_size
    rows = slice(head * d, (head + 1) * d)
    prefix = f"bert.encoder.layer.{layer}.attention.self.value"
    return [(f"{prefix}.weight", rows), (f"{prefix}.bias", rows)]


@dataclass
class Organism:
    """A teacher, a damaged student, the student before damage, and the answer."""

    teacher: Any                    # transformers model
    student: Any                    # the damaged student
    reference: Any                  # the student before damage (same architecture)
    tokenizer: Any
    layer_map: dict[int, int]       # student layer -> teacher layer it was copied from
    damaged: dict[Head, float]      # student (layer, head) -> scale applied to its value projection
    description: str = ""
    expected_head_map: dict[Head, Head] | None = None
    _touched: dict[Head, list[tuple[str, slice]]] = field(default_factory=dict, repr=False)

    def repaired(self, head: Head):
        """The damaged student with only `head`'s damaged rows restored from the reference: the exact
        model whose metric defines that head's undo-one effect."""
        model = copy.deepcopy(self.student)
        sd, ref = model.state_dict(), self.reference.state_dict()
        with torch.no_grad():
            for name, rows in self._touched[head]:
                sd[name][rows] = ref[name][rows]
        return model.eval()


def damaged_student(teacher=None, layers: Sequence[int] | None = (0, 2, 4), damage: dict[Head, float] | None = None,
                    tokenizer=None) -> Organism:
    """A student copied from `teacher` layers (`layers=None`: every layer, same depth), then damaged.

    `damage` maps student (layer, head) to the factor its value projection (weight rows and bias) is
    multiplied by: 0.0 makes the head output exactly 0 at every position, 0.5 halves its
    contribution. Default teacher: a random 6-layer, 4-head tiny BERT with scaled weights.
    """
    from interp.train.students import student_from_teacher_layers

    teacher = teacher if teacher is not None else tiny_bert(6, seed=0, scale=3.0, head_scale=30.0)
    n = teacher.config.num_hidden_layers
    layers = list(range(n)) if layers is None else [int(i) for i in layers]
    reference = student_from_teacher_layers(teacher, layers).eval()
    student = copy.deepcopy(reference).eval()
    damage = dict(damage if damage is not None else {(1, 1): 0.0, (1, 3): 0.5})
    touched: dict[Head, list[tuple[str, slice]]] = {}
    sd = student.state_dict()
    with torch.no_grad():
        for (l, h), factor in damage.items():
            touched[(l, h)] = _value_rows(student, l, h)
            for name, rows in touched[(l, h)]:
                sd[name][rows] *= factor
    where = "one layer" if len({l for l, _ in damage}) == 1 else "several layers"
    return Organism(teacher.eval(), student, reference, tokenizer or tiny_tokenizer(),
                    {j: i for j, i in enumerate(layers)}, damage,
                    f"student from teacher layers {layers}, value projections scaled {damage} ({where})",
                    _touched=touched)


def permuted_heads(teacher=None, layer: int = 1, perm: list[int] | None = None, tokenizer=None) -> Organism:
    """A same-depth copy of `teacher` whose heads in `layer` are reordered (student head h computes
    what teacher head perm[h] did); the function is unchanged. Answer: `expected_head_map`."""
    teacher = teacher if teacher is not None else tiny_bert(3, seed=0)
    n_heads = teacher.config.num_attention_heads
    perm = list(perm if perm is not None else [2, 0, 3, 1][:n_heads])
    student = copy.deepcopy(teacher).eval()
    attn = student.bert.encoder.layer[layer].attention
    d = attn.self.attention_head_size
    idx = torch.cat([torch.arange(p * d, (p + 1) * d) for p in perm])
    with torch.no_grad():
        for lin in (attn.self.query, attn.self.key, attn.self.value):
            lin.weight.copy_(lin.weight[idx])
            lin.bias.copy_(lin.bias[idx])
        attn.output.dense.weight.copy_(attn.output.dense.weight[:, idx])
    n = teacher.config.num_hidden_layers
    expected = {(l, h): ((l, perm[h]) if l == layer else (l, h)) for l in range(n) for h in range(n_heads)}
    return Organism(teacher.eval(), student, copy.deepcopy(teacher).eval(), tokenizer or tiny_tokenizer(),
                    {l: l for l in range(n)}, {}, f"heads of layer {layer} permuted by {perm}",
                    expected_head_map=expected)


@dataclass
class PlantedCircuit:
    """A model whose behaviour is carried by known nodes and edges (interp.circuits names)."""

    model: Any
    tokenizer: Any
    nodes: tuple[str, ...] = ("L0H0", "L1H2")
    edges: tuple[str, ...] = ("input->L0H0.v", "L0H0->L1H2.v", "L1H2->logits.in")


def planted_circuit(noise: float = 5.0) -> PlantedCircuit:
    """2-layer, 4-head, d=32 BERT whose answer is carried by L0H0 -> L1H2 (v) -> logits by construction.

    Token w0 is a marker (embedding dim 0). L0H0 attends uniformly and copies dim 0 into dim 1; L1H2
    attends uniformly and copies dim 1 into dim 2; the pooler reads dim 2 and the classifier turns it
    into the label-0 logit. Dim 3 is a large constant in every token embedding so that LayerNorm keeps
    the planted dims readable. All other weights are random (init std x `noise`): the other heads and
    MLPs do compute things, they are just not on the planted path.
    """
    model = tiny_bert(n_layers=2, d=32, heads=4, seed=11)
    tok = tiny_tokenizer()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 and "LayerNorm" not in name:
                p.mul_(noise)
        emb = model.bert.embeddings.word_embeddings.weight  # [vocab, d]
        emb[:, :4] = 0.0
        emb[:, 3] = 4.0
        emb[tok.convert_tokens_to_ids("w0"), 0] = 4.0
        for e in (model.bert.embeddings.position_embeddings.weight, model.bert.embeddings.token_type_embeddings.weight):
            e[:, :4] = 0.0
        dh = 8
        for layer, head, src, dst in ((0, 0, 0, 1), (1, 2, 1, 2)):
            blk = model.bert.encoder.layer[layer]
            rows = slice(head * dh, (head + 1) * dh)
            for lin in (blk.attention.self.query, blk.attention.self.key):
                lin.weight[rows] = 0.0      # uniform attention
                lin.bias[rows] = 0.0
            blk.attention.self.value.weight[rows] = 0.0
            blk.attention.self.value.bias[rows] = 0.0
            blk.attention.self.value.weight[head * dh, src] = 1.0
            o = blk.attention.output.dense.weight  # [d_out, d_in]
            o[:, rows] = 0.0
            o[dst, head * dh] = 10.0
        for blk in model.bert.encoder.layer:  # other heads and MLPs do not write the planted dims 0-2
            blk.attention.output.dense.weight[:3] = 0.0
            blk.output.dense.weight[:3] = 0.0
        model.bert.encoder.layer[0].attention.output.dense.weight[1, 0 * dh] = 10.0  # L0H0: dim 0 -> dim 1
        model.bert.encoder.layer[1].attention.output.dense.weight[2, 2 * dh] = 10.0  # L1H2: dim 1 -> dim 2
        model.bert.pooler.dense.weight.zero_()
        model.bert.pooler.dense.bias.zero_()
        model.bert.pooler.dense.weight[0, 2] = 1.0
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[0, 0] = 5.0
    return PlantedCircuit(model.eval(), tok)


def planted_circuit_pairs(n: int = 12, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Clean inputs carry the marker w0 in the hypothesis, corrupted ones a random word in its place."""
    r = random.Random(seed)
    others = WORDS[1:]
    clean, corrupt = [], []
    for i in range(n):
        p = [r.choice(others) for _ in range(r.randrange(3, 6))]
        h = [r.choice(others) for _ in range(r.randrange(2, 4))]
        j = r.randrange(len(h))
        h_clean, h_cor = list(h), list(h)
        h_clean[j], h_cor[j] = "w0", r.choice(others)
        clean.append({"id": f"c{i}", "premise": " ".join(p), "hypothesis": " ".join(h_clean)})
        corrupt.append({"id": f"r{i}", "premise": " ".join(p), "hypothesis": " ".join(h_cor)})
    return clean, corrupt


def planted_vit_circuit(noise: float = 3.0) -> PlantedCircuit:
    """2-layer, 4-head, d=32 pre-LayerNorm ViT (16x16 images, 4x4 patches) whose answer is carried by
    input -> L0H0 (v) -> L1H2 (v) -> logits by construction, as `planted_circuit` for BERT.

    The patch embedding writes a patch's mean red value (x8) into dim 0 and nothing else into dims 0-3;
    dim 3 is a constant 4 (patch bias, [CLS] token) so that every LayerNorm keeps the planted dims readable.
    L0H0 attends uniformly and copies LayerNorm dim 0 into dim 1; L1H2 copies dim 1 into dim 2; the
    classifier turns the final LayerNorm's dim 2 at [CLS] into the label-0 logit. Other heads and MLPs
    (random weights x `noise`) never write dims 0-2."""
    from interp.train.vision import tiny_vit

    model: Any = tiny_vit(("marked", "b", "c"), image_size=16, patch_size=4, d=32, layers=2, heads=4, seed=11)
    dh = 8
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 and "layernorm" not in name:
                p.mul_(noise)
        emb = model.vit.embeddings
        proj = emb.patch_embeddings.projection  # Conv2d(3, d, 4, stride 4): weight [d, 3, 4, 4]
        proj.weight[:4] = 0.0
        proj.bias[:4] = 0.0
        proj.weight[0, 0] = 8.0 / 16  # dim 0: 8 x the patch's mean red value
        proj.bias[3] = 4.0
        emb.cls_token[..., :4] = 0.0
        emb.cls_token[..., 3] = 4.0
        emb.position_embeddings[..., :4] = 0.0
        for blk in model.vit.layers:  # other heads and MLPs do not write the planted dims 0-2
            for lin in (blk.attention.o_proj, blk.mlp.fc2):
                lin.weight[:3] = 0.0
                lin.bias[:3] = 0.0
        for layer, head, src, dst in ((0, 0, 0, 1), (1, 2, 1, 2)):  # L0H0: dim 0 -> 1; L1H2: dim 1 -> 2
            att = model.vit.layers[layer].attention
            rows = slice(head * dh, (head + 1) * dh)
            for lin in (att.q_proj, att.k_proj, att.v_proj):
                lin.weight[rows] = 0.0  # uniform attention; the value reads one dim
                lin.bias[rows] = 0.0
            att.v_proj.weight[head * dh, src] = 1.0
            att.o_proj.weight[:, rows] = 0.0
            att.o_proj.weight[dst, head * dh] = 10.0
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[0, 2] = 5.0
    return PlantedCircuit(model.eval(), None)


def planted_vit_pairs(n: int = 12, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Images [3, 16, 16] with random green and blue; clean ones have one random 4x4 patch fully red, the
    corrupted copies no red anywhere."""
    g = torch.Generator().manual_seed(seed)
    clean, corrupt = [], []
    for i in range(n):
        x = torch.rand(3, 16, 16, generator=g)
        x[0] = 0.0
        corrupt.append({"id": f"r{i}", "pixel_values": x.clone()})
        r, c = (int(v) * 4 for v in torch.randint(0, 4, (2,), generator=g))
        x[0, r:r + 4, c:c + 4] = 1.0
        clean.append({"id": f"c{i}", "pixel_values": x})
    return clean, corrupt


def hans_tokenizer():
    """A BERT tokenizer whose whole-word vocabulary covers our HANS generator and its corruptions."""
    import transformers as T

    from interp.contrast import _categories
    from interp.data import hans_gen as g
    words = {w.lower() for seed in (0, 7) for ex in g.generate_hans(20, seed=seed)
             for w in (ex["premise"] + " " + ex["hypothesis"]).split()}
    words |= set(g.CONTENT_WORDS) | {w for c in _categories() for w in c}
    return T.BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB[:5] + sorted(words))})


def save_tiny_pair(folder: str, layers: tuple[int, ...] = (0, 2, 4), seed: int = 0) -> tuple[str, str]:
    """Save a tiny random 6-layer teacher and a student copied from its `layers` (HANS vocabulary,
    `config.kd_init` set) as checkpoint folders `<folder>/teacher` and `<folder>/student`; returns
    their paths. Every `interp` command runs on them in seconds (no training: numbers mean nothing)."""
    import transformers as T

    from interp.train.students import student_from_teacher_layers

    tok = hans_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = T.BertConfig(hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=64,  # type: ignore[call-arg]
                           vocab_size=len(tok.vocab), num_labels=3, attn_implementation="eager",
                           max_position_embeddings=64, id2label=NLI_LABELS,
                           label2id={v: k for k, v in NLI_LABELS.items()})
        teacher = T.BertForSequenceClassification(cfg).eval()
    with torch.no_grad():  # larger weights: effects well above float rounding
        for name, p in teacher.named_parameters():
            if p.dim() > 1:
                p.mul_(30.0 if ("classifier" in name or "pooler" in name) else 3.0)
    student = student_from_teacher_layers(teacher, list(layers))
    paths = []
    for name, model in (("teacher", teacher), ("student", student)):
        path = f"{folder}/{name}"
        model.save_pretrained(path)
        tok.save_pretrained(path)
        paths.append(path)
    return paths[0], paths[1]
