"""The semantic cache (issue #21): after the exact cache (response_cache.py) misses, a request whose text means
nearly the same as a stored one's — same tenant, endpoint, resolved provider and model, and the same non-text
parameters — is answered with that stored answer (`x-gomodel-cache: hit-semantic`, usage `cache: "semantic"`).

Imported only by calls of a key whose policy says `semantic` (and at start-up when SEMANTIC_CACHE_EMBED_MODEL is
set), so a call without it walks none of this.

- text.py: what of a request is embedded, and what must match exactly (the scope).
- embedder.py: the embedding, through the gateway's own embeddings route, billed as `cache.embed`.
- store.py: the vector store interface; sqlite_store.py (sqlite-vec) and pg_store.py (pgvector) implement it.
- lookup.py: a call's semantic lookup and the store of its answer.
"""
