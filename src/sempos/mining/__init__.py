"""The Semantic Sampler (SePP-ID) and the pair sets of the semantic-pair dataset study."""
