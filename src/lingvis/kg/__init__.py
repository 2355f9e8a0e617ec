"""Multimodal knowledge graphs: extraction from captions and images, cross-modal entity linking, an RDF store
(pyoxigraph embedded or a SPARQL 1.1 server), link prediction and question answering over the graph.
Optional dependency: pyoxigraph (`pip install 'lingvis[kg]'`)."""
