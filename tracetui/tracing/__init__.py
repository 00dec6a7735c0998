"""The OLMoTrace pipeline: spans, documents, relevance; shared by the app and the CLI."""
