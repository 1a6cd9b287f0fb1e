"""Where a pretraining run's positive pairs come from, and in which order it sees them.

  pairs     PairSource: the epoch's (a, b) pair list (augmented, plus or instead of extra pairs), seeded
  sources   a method's `positives` entry -> PairSource + PartnerIndex (mined, oracle, random, study sets)
  pairsets  oracle / random pairs; the semantic-pair study's matched sets S, A, A2, M
  partners  membership tests on a pair list (variant M positives, masking partners as negatives)

Dependencies point one way: train -> positives -> mining (mined pair files are read, never written here).
"""
