"""Understanding a collection and its matches.

- evaluate: leave-one-out retrieval evaluation (P@k, mAP) on a labelled collection, stored
- explain: why two images match (each feature-map position's share of their similarity)
- projection: 2-D UMAP maps of a model's embeddings (fit, score, store) and placing a query on one
"""

__all__ = ["evaluate", "explain", "projection"]
