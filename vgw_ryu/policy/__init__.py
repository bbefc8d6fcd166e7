"""The policy model: documents, validation, effective rulesets, stable numbers."""
