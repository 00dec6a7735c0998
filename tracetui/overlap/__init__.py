"""Overlap reports: which test items already sit verbatim in the corpus (contamination)."""
