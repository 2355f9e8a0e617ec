"""`kg ask`: answer a question from triples retrieved from the graph, citing them.

Retrieval is template-based: the question is matched against a few patterns over the vocabulary (spatial
relations, attributes, counting, listing) and an entity description ('the small blue square': type,
colour, size), which become SPARQL over the store; every triple used is cited with its source documents
and confidence. With a lingvis causal LM (`--model`), the retrieved triples and citation numbers are
put in the prompt and the model writes the answer; without one, the answer is composed from the triples."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import queries as Q
from . import vocab as V
from .rdf import lit

REL_WORDS = {"left of": "left_of", "right of": "right_of", "above": "above", "below": "below",
             "to the left of": "left_of", "to the right of": "right_of", "under": "below", "over": "above"}
_REL = r"(to the left of|to the right of|left of|right of|above|below|under|over)"
_DESC = r"(?:the |a |an )?((?:(?:small|large|red|green|blue|yellow|purple|orange) )*(?:circle|square|triangle|star|cross|shape|object|thing)s?)"


@dataclass
class Citation:
    n: int
    subject: str
    predicate: str
    object: str
    sources: list[str]
    confidence: float

    def text(self) -> str:
        return f"[{self.n}] {self.subject} {self.predicate} {self.object} ({', '.join(self.sources)}; " \
               f"confidence {self.confidence:.2f})"


@dataclass
class Answer:
    question: str
    answer: str
    intent: str
    entities: list[str] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"question": self.question, "answer": self.answer, "intent": self.intent, "entities": self.entities,
                "citations": [c.__dict__ for c in self.citations]}


def describe(text: str) -> dict[str, str]:
    """'small blue squares' -> {'size': 'small', 'colour': 'blue', 'type': 'square'} (generic nouns: no type)."""
    words = text.lower().split()
    out = {}
    for w in words:
        w = w[:-1] if w.endswith("s") and w[:-1] in V.SHAPE_TYPES else w
        if w in V.SIZES:
            out["size"] = w
        elif w in V.COLOURS:
            out["colour"] = w
        elif w in V.SHAPE_TYPES:
            out["type"] = w
    return out


def _match(var: str, desc: dict[str, str]) -> str:
    parts = [f"{var} a kg:Entity ."]
    if "type" in desc:
        parts.append(f"{var} a kg:{V.term_name(desc['type'])} .")
    for k in ("colour", "size"):
        if k in desc:
            parts.append(f"{var} kg:{k} {lit(desc[k])} .")
    return " ".join(parts)


def parse_question(q: str) -> tuple[str, dict]:
    """-> (intent, slots). Intents: subjects_of (which X are REL Y), objects_of (what is Y REL), attribute
    (what colour/size is Y), count (how many X), list (what is in SCENE / list X)."""
    s = " ".join(q.lower().strip().rstrip("?.!").split())
    scene = re.search(r"\bin (?:image |scene )?([\w\-./]+\.(?:png|jpe?g|webp|bmp))", s)
    slots = {"scene": scene.group(1)} if scene else {}
    if scene:
        s = (s[:scene.start()] + s[scene.end():]).strip()
    m = re.match(rf"^(?:which|what)(?: {_DESC})? (?:is|are) {_REL} {_DESC}$", s)
    if m:
        return "subjects_of", {**slots, "x": describe(m.group(1) or ""), "rel": REL_WORDS[m.group(2)],
                               "y": describe(m.group(3))}
    m = re.match(rf"^what (?:is|are) {_DESC} {_REL}$", s) or re.match(rf"^(?:what|which shapes?) (?:is|are) {_DESC} {_REL}$", s)
    if m:
        return "objects_of", {**slots, "y": describe(m.group(1)), "rel": REL_WORDS[m.group(2)]}
    m = re.match(rf"^what (colou?r|size) (?:is|are) {_DESC}$", s)
    if m:
        return "attribute", {**slots, "attr": "colour" if m.group(1).startswith("colo") else "size",
                             "y": describe(m.group(2))}
    m = re.match(rf"^how many {_DESC}(?: are there)?$", s)
    if m:
        return "count", {**slots, "x": describe(m.group(1))}
    return "list", {**slots, "x": describe(s)}


class Asker:
    def __init__(self, store, max_entities: int = 20):
        self.store, self.max_entities = store, max_entities

    def _scene_filter(self, var: str, slots: dict) -> str:
        return f"{var} kg:scene {lit(slots['scene'])} ." if "scene" in slots else ""

    def _cite(self, rows: list[dict], predicate: str | None = None) -> list[Citation]:
        """Citations for (s, p, o) rows, with the sources and best confidence of their statements."""
        out, seen = [], {}
        for r in rows:
            s, o = r["s"]["value"], r["o"]["value"]
            p = predicate or r["p"]["value"]
            key = (s, p, o)
            if key in seen:
                continue
            prov = self.store.query(Q.PREFIX + f"""SELECT ?src ?conf WHERE {{ ?st a kg:Statement ;
              rdf:subject <{s}> ; rdf:predicate <{p}> ; rdf:object {'<' + o + '>' if r['o']['type'] == 'uri' else lit(o)} ;
              prov:wasDerivedFrom ?src ; kg:confidence ?conf }}""").rows
            if not prov:
                continue
            seen[key] = len(out) + 1
            out.append(Citation(len(out) + 1, self._label(s), "type" if p == V.RDF_TYPE else V.local_name(p), self._label(o) if r["o"]["type"] == "uri"
                                else o, sorted({V.source_name(x["src"]["value"]) for x in prov}),
                                max(float(x["conf"]["value"]) for x in prov)))
        return out

    def _label(self, iri: str) -> str:
        try:
            return V.entity_id(iri)
        except ValueError:
            return V.local_name(iri)

    def ask(self, question: str) -> Answer:
        intent, slots = parse_question(question)
        k = self.max_entities
        if intent == "subjects_of":
            q = Q.PREFIX + f"""SELECT DISTINCT ?s ?o WHERE {{ {_match('?o', slots['y'])} {_match('?s', slots['x'])}
              ?s kg:{slots['rel']} ?o . {self._scene_filter('?s', slots)} }} ORDER BY ?s LIMIT {k}"""
            rows = self.store.query(q).rows
            cites = self._cite(rows, V.pred(slots["rel"]))
            return self._compose(question, intent, cites, lambda c: c.subject,
                                 f"{_words(slots['rel'])} {_phrase(slots['y'])}")
        if intent == "objects_of":
            q = Q.PREFIX + f"""SELECT DISTINCT ?s ?o WHERE {{ {_match('?s', slots['y'])} ?s kg:{slots['rel']} ?o .
              {self._scene_filter('?s', slots)} }} ORDER BY ?o LIMIT {k}"""
            cites = self._cite(self.store.query(q).rows, V.pred(slots["rel"]))
            return self._compose(question, intent, cites, lambda c: c.object,
                                 f"{_phrase(slots['y'])} is {_words(slots['rel'])}")
        if intent == "attribute":
            q = Q.PREFIX + f"""SELECT DISTINCT ?s ?o WHERE {{ {_match('?s', slots['y'])} ?s kg:{slots['attr']} ?o .
              {self._scene_filter('?s', slots)} }} ORDER BY ?s LIMIT {k}"""
            cites = self._cite(self.store.query(q).rows, V.pred(slots["attr"]))
            return self._compose(question, intent, cites, lambda c: f"{c.subject}: {c.object}", slots["attr"])
        if intent == "count":
            q = Q.PREFIX + f"""SELECT DISTINCT ?s ?o WHERE {{ {_match('?s', slots['x'])} ?s a ?o .
              FILTER(?o != kg:Entity) {self._scene_filter('?s', slots)} }} ORDER BY ?s"""
            rows = self.store.query(q).rows
            cites = self._cite(rows[:k], V.RDF_TYPE)
            n = len({r["s"]["value"] for r in rows})
            return Answer(question, f"{n} ({_phrase(slots['x'])})" + (" " + _refs(cites) if cites else ""),
                          intent, [c.subject for c in cites], cites)
        q = Q.PREFIX + f"""SELECT DISTINCT ?s ?p ?o WHERE {{ {_match('?s', slots.get('x', {}))}
          {self._scene_filter('?s', slots)} ?s ?p ?o . FILTER(?p IN (kg:left_of, kg:right_of, kg:above, kg:below,
          kg:colour, kg:size)) }} ORDER BY ?s ?p ?o LIMIT {k}"""
        cites = self._cite(self.store.query(q).rows)
        return self._compose(question, intent, cites, lambda c: f"{c.subject} {c.predicate} {c.object}", "facts")

    def _compose(self, question, intent, cites, pick, what) -> Answer:
        if not cites:
            return Answer(question, f"The graph has no triples that answer this ({intent}: {what}).", intent)
        items = list(dict.fromkeys(pick(c) for c in cites))
        refs = {item: [c.n for c in cites if pick(c) == item] for item in items}
        body = "; ".join(f"{item} {''.join(f'[{n}]' for n in refs[item])}" for item in items)
        ents = sorted({c.subject for c in cites} | {c.object for c in cites if "/" in c.object})
        return Answer(question, body, intent, ents, cites)


def _refs(cites) -> str:
    return "".join(f"[{c.n}]" for c in cites)


def _words(rel: str) -> str:
    return rel.replace("_", " ")


def _phrase(desc: dict) -> str:
    return " ".join(desc[k] for k in ("size", "colour", "type") if k in desc) or "anything"


def answer_with_model(answer: Answer, model, tokenizer, max_new_tokens: int = 96) -> str:
    """Let a lingvis causal LM write the answer from the cited triples (greedy)."""
    from ..text_generation import generate

    facts = "\n".join(c.text() for c in answer.citations) or "(no triples found)"
    messages = [{"role": "system", "content": "Answer from the numbered facts only and cite them like [1]."},
                {"role": "user", "content": f"Facts:\n{facts}\n\nQuestion: {answer.question}"}]
    try:
        prompt = tokenizer.apply_chat_template(messages)
    except (ValueError, AttributeError):
        prompt = f"Facts:\n{facts}\nQuestion: {answer.question}\nAnswer:"
    return generate(model, tokenizer, prompt, max_new_tokens=max_new_tokens, overflow="slide").strip()
