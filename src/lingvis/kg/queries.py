"""The SPARQL the library itself runs (over the union of all named graphs): reading records back and the
lookups the builder, the completion trainer and `kg ask` need."""
from __future__ import annotations

from . import vocab as V

PREFIX = "".join(f"PREFIX {k}: <{v}>\n" for k, v in V.PREFIXES.items())

STATEMENTS = PREFIX + """
SELECT ?s ?p ?o ?src ?conf ?model ?cs ?ce ?box WHERE {
  ?st a kg:Statement ; rdf:subject ?s ; rdf:predicate ?p ; rdf:object ?o ;
      prov:wasDerivedFrom ?src ; kg:confidence ?conf ; prov:wasAttributedTo ?model .
  OPTIONAL { ?st kg:charStart ?cs ; kg:charEnd ?ce }
  OPTIONAL { ?st kg:box ?box }
}"""

ENTITIES = PREFIX + """
SELECT ?e ?type ?label ?scene WHERE {
  ?e a kg:Entity .
  OPTIONAL { ?e a ?type . FILTER(?type != kg:Entity) }
  OPTIONAL { ?e rdfs:label ?label }
  OPTIONAL { ?e kg:scene ?scene }
}"""

ENTITY_ATTRIBUTES = PREFIX + """
SELECT ?e ?p ?v WHERE {
  ?e a kg:Entity ; ?p ?v .
  FILTER(isLiteral(?v) && ?p != rdfs:label && ?p != kg:scene)
}"""

ENTITY_SOURCES = PREFIX + """
SELECT DISTINCT ?e ?src WHERE {
  { ?st a kg:Statement ; rdf:subject ?e ; prov:wasDerivedFrom ?src }
  UNION { ?st a kg:Statement ; rdf:object ?e ; prov:wasDerivedFrom ?src . ?e a kg:Entity }
  UNION { ?m kg:denotes ?e ; prov:wasDerivedFrom ?src }
  UNION { GRAPH ?src { ?e a kg:Entity . ?src a prov:Entity } }
}"""

MENTIONS = PREFIX + """
SELECT ?m ?e ?src ?score ?model ?text ?cs ?ce ?box WHERE {
  ?m a kg:Mention ; kg:denotes ?e ; prov:wasDerivedFrom ?src ; kg:linkScore ?score ; prov:wasAttributedTo ?model .
  OPTIONAL { ?m kg:mentionText ?text }
  OPTIONAL { ?m kg:charStart ?cs ; kg:charEnd ?ce }
  OPTIONAL { ?m kg:box ?box }
}"""

SOURCES = PREFIX + """
SELECT ?src ?kind ?label ?text ?file ?scene WHERE {
  GRAPH ?src { ?src a prov:Entity ; a ?kind ; rdfs:label ?label .
    FILTER(?kind != prov:Entity)
    OPTIONAL { ?src kg:text ?text } OPTIONAL { ?src kg:fileName ?file } OPTIONAL { ?src kg:scene ?scene } }
}"""


def scene_entities(scene: str) -> str:
    """Entities already stored for one scene, with their attributes (the builder links new mentions to them)."""
    from .rdf import lit

    return PREFIX + f"""
SELECT ?e ?type ?p ?v WHERE {{
  ?e a kg:Entity ; kg:scene {lit(scene)} .
  OPTIONAL {{ ?e a ?type . FILTER(?type != kg:Entity) }}
  OPTIONAL {{ ?e ?p ?v . FILTER(isLiteral(?v) && ?p != rdfs:label && ?p != kg:scene) }}
}}"""


# asserted entity-to-entity triples (the graph link prediction trains on), one row per distinct triple
RELATION_TRIPLES = PREFIX + """
SELECT DISTINCT ?s ?p ?o WHERE {
  ?st a kg:Statement ; rdf:subject ?s ; rdf:predicate ?p ; rdf:object ?o .
  ?o a kg:Entity .
}"""
